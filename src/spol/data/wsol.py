"""wsolevaluation metadata (clovaai/wsolevaluation, CVPR 2020): one folder of index files per split.

Split folder (e.g. ``metadata/CUB/test``)::

    image_ids.txt      <image_id>                          one per line, a relative path
    class_labels.txt   <image_id>,<label>                  0-based integer labels
    image_sizes.txt    <image_id>,<width>,<height>         optional (OpenImages has none)
    localization.txt   <image_id>,<x0>,<y0>,<x1>,<y1>      boxes: one line per box, or
                       <image_id>,<mask_path>,<ignore_path> masks: one line per instance; the first
                                                            line of an image names its ignore mask,
                                                            later lines leave it empty
                       optional (train splits have none)

Records: ``path = image_root / image_id``, masks ``mask_root / mask_path``; boxes are the file's
``(x0, y0, x1, y1)`` in original pixels; the label is the file's integer; class names are the
label numbers as strings (the metadata has no names). Every unusable line becomes a `Problem`
with its ``file:line``; nothing is dropped silently.

`read_wsol` reads a dataset root that holds the split folders (``root/{train,val,test}/``, or
``root/metadata/{train,val,test}/``) with the images and masks under ``root`` itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from spol.data._reading import PendingRecord, Source, finish_records, parse_box, read_lines
from spol.data.records import SPLITS, Box, Dataset, DatasetFormatError, ImageRecord, Problem, Split

logger = logging.getLogger(__name__)

METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
"""The index files of one split folder; ``image_ids.txt`` and ``class_labels.txt`` are required."""


def _fields(source: Source, line: str, count: int, expected: str, problems: list[Problem]) -> list[str] | None:
    parts = [part.strip() for part in line.split(",")]
    if len(parts) != count or not parts[0]:
        problems.append(source.problem(f"malformed line {line!r}: expected {expected!r}; ignored"))
        return None
    return parts


def read_wsol_metadata(
    split_dir: str | os.PathLike[str],
    *,
    split: Split,
    image_root: str | os.PathLike[str] | None = None,
    mask_root: str | os.PathLike[str] | None = None,
    probe_sizes: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> Dataset:
    """Read one split folder of wsolevaluation metadata.

    Args:
        split_dir: Folder holding ``image_ids.txt``, ``class_labels.txt`` and optionally
            ``image_sizes.txt`` and ``localization.txt``.
        split: The split every record gets.
        image_root: Folder the image ids are relative to; default ``split_dir``'s parent.
        mask_root: Folder the mask paths are relative to; default `image_root`.
        probe_sizes: Read the size of an image missing from ``image_sizes.txt`` from its header
            (a missing or unreadable image is then a problem, not a record). False keeps such
            records with ``size=None`` and never opens an image (enough for PxAP and for
            score-map evaluation when the sizes are stated).
        workers: Threads reading image headers.
        progress: Show a progress bar while reading image headers.

    Returns:
        Dataset of format ``"wsol"`` with the records in ``image_ids.txt`` order.

    Raises:
        DatasetFormatError: ``image_ids.txt`` or ``class_labels.txt`` is missing.
    """
    split_dir = Path(split_dir)
    image_root = Path(image_root) if image_root is not None else split_dir.parent
    mask_root = Path(mask_root) if mask_root is not None else image_root
    missing = [name for name in METADATA_FILES[:2] if not (split_dir / name).is_file()]
    if missing:
        raise DatasetFormatError(
            f"{split_dir} is not a wsolevaluation metadata split folder: missing {', '.join(missing)}. "
            f"Point at a folder such as metadata/CUB/test holding {', '.join(METADATA_FILES)}"
        )
    problems: list[Problem] = []

    ids: dict[str, Source] = {}
    for source, line in read_lines(split_dir / "image_ids.txt"):
        if line in ids:
            problems.append(source.problem(f"image id {line} listed again (first at {ids[line].line}); ignored"))
        else:
            ids[line] = source

    def known(image_id: str, source: Source, what: str) -> bool:
        if image_id not in ids:
            problems.append(source.problem(f"{what} for image id {image_id} not in image_ids.txt; ignored"))
            return False
        return True

    labels: dict[str, int] = {}
    skipped: set[str] = set()
    for source, line in read_lines(split_dir / "class_labels.txt"):
        parts = _fields(source, line, 2, "<image_id>,<label>", problems)
        if parts is None or not known(parts[0], source, "class label"):
            continue
        if parts[0] in labels:
            problems.append(source.problem(f"second class label for image id {parts[0]}; ignored"))
            continue
        try:
            label = int(parts[1])
            if label < 0:
                raise ValueError
        except ValueError:
            problems.append(
                source.problem(f"label {parts[1]!r} of image id {parts[0]} is not an integer >= 0; image skipped")
            )
            skipped.add(parts[0])
            continue
        labels[parts[0]] = label

    sizes: dict[str, tuple[int, int]] = {}
    if (split_dir / "image_sizes.txt").is_file():
        for source, line in read_lines(split_dir / "image_sizes.txt"):
            parts = _fields(source, line, 3, "<image_id>,<width>,<height>", problems)
            if parts is None or not known(parts[0], source, "image size"):
                continue
            try:
                width, height = int(parts[1]), int(parts[2])
                if width <= 0 or height <= 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    source.problem(
                        f"size {parts[1]!r}x{parts[2]!r} of image id {parts[0]} is not two integers > 0; ignored"
                    )
                )
                continue
            if parts[0] in sizes:
                problems.append(source.problem(f"second size for image id {parts[0]}; ignored"))
                continue
            sizes[parts[0]] = (width, height)

    boxes: dict[str, list[tuple[Box, Source]]] = {}
    masks: dict[str, list[Path]] = {}
    ignores: dict[str, Path | None] = {}
    if (split_dir / "localization.txt").is_file():
        kind: str | None = None  # "boxes" or "masks", from the first well-formed line
        for source, line in read_lines(split_dir / "localization.txt"):
            count = len(line.split(","))
            if kind is None and count in (3, 5):
                kind = "boxes" if count == 5 else "masks"
            if kind is None:
                problems.append(
                    source.problem(
                        f"malformed line {line!r}: expected '<image_id>,<x0>,<y0>,<x1>,<y1>' or "
                        "'<image_id>,<mask_path>,<ignore_path>'; ignored"
                    )
                )
                continue
            if kind == "boxes":
                parts = _fields(source, line, 5, "<image_id>,<x0>,<y0>,<x1>,<y1>", problems)
                if parts is None or not known(parts[0], source, "box"):
                    continue
                try:
                    box = parse_box(parts[1:])
                except ValueError:
                    problems.append(
                        source.problem(f"box {parts[1:]} of image id {parts[0]} is not four numbers; ignored")
                    )
                    continue
                boxes.setdefault(parts[0], []).append((box, source))
            else:
                parts = _fields(source, line, 3, "<image_id>,<mask_path>,<ignore_path>", problems)
                if parts is None or not known(parts[0], source, "mask"):
                    continue
                if not parts[1]:
                    problems.append(source.problem(f"empty mask path for image id {parts[0]}; ignored"))
                    continue
                if parts[0] in masks:
                    if parts[2]:
                        problems.append(
                            source.problem(
                                f"ignore mask {parts[2]} on a later line of image id {parts[0]}; only the first line "
                                "may name it; ignore path ignored"
                            )
                        )
                    masks[parts[0]].append(mask_root / parts[1])
                else:
                    masks[parts[0]] = [mask_root / parts[1]]
                    ignores[parts[0]] = mask_root / parts[2] if parts[2] else None

    pending: list[PendingRecord] = []
    for image_id, source in ids.items():
        if image_id in skipped:
            continue
        if image_id not in labels:
            problems.append(source.problem(f"image id {image_id} has no line in class_labels.txt; image skipped"))
            continue
        pending.append(
            PendingRecord(
                image_id=image_id,
                path=(image_root / image_id).absolute(),
                label=labels[image_id],
                split=split,
                boxes=boxes.get(image_id, []),
                size=sizes.get(image_id),
                mask_paths=tuple(masks.get(image_id, ())),
                ignore_path=ignores.get(image_id),
            )
        )
    records = finish_records(pending, problems, workers=workers, progress=progress, probe_sizes=probe_sizes)
    logger.info("wsol %s (%s): %d images, %d problems", split_dir, split, len(records), len(problems))
    return _dataset(split_dir, records, problems)


def _dataset(root: Path, records: list[ImageRecord], problems: list[Problem]) -> Dataset:
    """The metadata has no class names: they are the label numbers, up to the largest label."""
    num_classes = max((r.label for r in records), default=-1) + 1
    return Dataset(
        format="wsol",
        root=root,
        class_names=[str(label) for label in range(num_classes)],
        records=records,
        problems=problems,
    )


def _metadata_dir(root: Path) -> Path:
    if not any((root / split / "image_ids.txt").is_file() for split in SPLITS):
        if any((root / "metadata" / split / "image_ids.txt").is_file() for split in SPLITS):
            return root / "metadata"
    return root


def read_wsol(root: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True) -> Dataset:
    """Read every split folder (``train``, ``val``, ``test``) of wsolevaluation metadata under `root`.

    Args:
        root: Folder holding the split folders (directly or under ``metadata/``); image ids and
            mask paths are relative to `root`.
        workers: Threads reading image headers (for images without a stated size).
        progress: Show progress bars.

    Returns:
        Dataset of format ``"wsol"``: the splits' records in train, val, test order and their problems.

    Raises:
        DatasetFormatError: no split folder with ``image_ids.txt`` under `root`.
    """
    root = Path(root)
    metadata = _metadata_dir(root)
    present = [split for split in SPLITS if (metadata / split / "image_ids.txt").is_file()]
    if not present:
        raise DatasetFormatError(
            f"{root} holds no wsolevaluation metadata: expected {root}/<split>/image_ids.txt (or "
            f"{root}/metadata/<split>/image_ids.txt) for a split among {', '.join(SPLITS)}"
        )
    records: list[ImageRecord] = []
    problems: list[Problem] = []
    for split in present:
        part = read_wsol_metadata(
            metadata / split, split=split, image_root=root, mask_root=root, workers=workers, progress=progress
        )
        records.extend(part.records)
        problems.extend(part.problems)
    return _dataset(root, records, problems)
