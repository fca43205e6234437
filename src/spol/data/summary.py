"""The summary `spol data summary` prints (the readers are dispatched in `spol.data.formats`)."""

from __future__ import annotations

from typing import Any

from spol.data.formats import FORMATS, read_dataset
from spol.data.images import SIZE_MISMATCH, verify_images
from spol.data.records import SPLITS, Dataset, ImageRecord, Split

__all__ = ["FORMATS", "read_dataset", "summarize"]  # FORMATS and read_dataset: re-exported from formats


def summarize(
    dataset: Dataset,
    *,
    verify: bool = False,
    workers: int | None = None,
    split: Split | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Counts and problems of a dataset, as the JSON object of ``spol data summary --json``.

    Args:
        dataset: A dataset from `read_dataset`.
        verify: Also decode every image fully (`spol.data.verify_images`); images that fail are
            problems and are left out of the counts, and a decoded size other than the record's
            is a problem.
        workers: Decoding threads for `verify`.
        split: Count (and verify) only this split; the reading problems are all listed.
        progress: Show a progress bar while verifying.

    Returns:
        ``{"format", "images": {split: count} (splits in train, val, test order), "classes",
        "boxes", "images_with_masks", "problems": [Problem.to_json(), ...]}``.
    """
    records: list[ImageRecord] = dataset.records if split is None else dataset.split(split)
    problems = list(dataset.problems)
    if verify:
        found = verify_images(
            [r.path for r in records], workers=workers, sizes=[r.size for r in records], progress=progress
        )
        problems += found
        undecodable = {p.path for p in found if not p.problem.startswith(SIZE_MISMATCH)}
        records = [r for r in records if str(r.path) not in undecodable]
    counts = {s: 0 for s in SPLITS}
    for record in records:
        counts[record.split] = counts.get(record.split, 0) + 1
    return {
        "format": dataset.format,
        "images": {s: n for s, n in counts.items() if n or s == split},
        "classes": dataset.num_classes,
        "boxes": sum(len(r.boxes) for r in records),
        "images_with_masks": sum(1 for r in records if r.mask_paths),
        "problems": [p.to_json() for p in problems],
    }
