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
from dataclasses import dataclass, field
from pathlib import Path

from spol.data._reading import PendingRecord, Source, finish_records, parse_box, read_lines
from spol.data.records import SPLITS, Box, Dataset, DatasetFormatError, ImageRecord, Problem, Split

logger = logging.getLogger(__name__)

METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
"""The index files of one split folder; ``image_ids.txt`` and ``class_labels.txt`` are required."""


_SPLIT_NAMES: dict[str, Split] = {name: name for name in SPLITS}


def read_wsol_metadata(
    split_dir: str | os.PathLike[str],
    *,
    split: Split | None = None,
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
        split: The split every record gets; None: the folder's name when it is one (``metadata/CUB/val``),
            else ``"test"``.
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
    split = split or _SPLIT_NAMES.get(split_dir.name, "test")
    image_root = Path(image_root) if image_root is not None else split_dir.parent
    mask_root = Path(mask_root) if mask_root is not None else image_root
    _check_split_dir(split_dir)
    problems: list[Problem] = []
    ids = _read_image_ids(split_dir / "image_ids.txt", problems)
    labels, skipped = _read_labels(split_dir / "class_labels.txt", ids, problems)
    sizes = _read_sizes(split_dir / "image_sizes.txt", ids, problems)
    localization = _read_localization(split_dir / "localization.txt", ids, mask_root, problems)
    pending = _pending_records(ids, labels, skipped, sizes, localization, image_root, split, problems)
    records = finish_records(pending, problems, workers=workers, progress=progress, probe_sizes=probe_sizes)
    logger.info("wsol %s (%s): %d images, %d problems", split_dir, split, len(records), len(problems))
    return _dataset(split_dir, records, problems)


@dataclass
class _Localization:
    """What ``localization.txt`` says, by image id: boxes, or instance masks and the ignore mask."""

    boxes: dict[str, list[tuple[Box, Source]]] = field(default_factory=dict)
    masks: dict[str, list[Path]] = field(default_factory=dict)
    ignores: dict[str, Path | None] = field(default_factory=dict)


def _pending_records(
    ids: dict[str, Source],
    labels: dict[str, int],
    skipped: set[str],
    sizes: dict[str, tuple[int, int]],
    localization: _Localization,
    image_root: Path,
    split: Split,
    problems: list[Problem],
) -> list[PendingRecord]:
    """The images of ``image_ids.txt`` with a usable label, in its order; one without a label line is a problem."""
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
                boxes=localization.boxes.get(image_id, []),
                size=sizes.get(image_id),
                mask_paths=tuple(localization.masks.get(image_id, ())),
                ignore_path=localization.ignores.get(image_id),
            )
        )
    return pending


def _check_split_dir(split_dir: Path) -> None:
    """Raise `DatasetFormatError` naming the required index files `split_dir` lacks."""
    missing = [name for name in METADATA_FILES[:2] if not (split_dir / name).is_file()]
    if missing:
        raise DatasetFormatError(
            f"{split_dir} is not a wsolevaluation metadata split folder: missing {', '.join(missing)}. "
            f"Point at a folder such as metadata/CUB/test holding {', '.join(METADATA_FILES)}"
        )


def _entry(
    source: Source, line: str, count: int, expected: str, what: str, ids: dict[str, Source], problems: list[Problem]
) -> list[str] | None:
    """The `count` comma-separated fields of a line about a listed image id; None (and a problem) otherwise."""
    parts = [part.strip() for part in line.split(",")]
    if len(parts) != count or not parts[0]:
        problems.append(source.problem(f"malformed line {line!r}: expected {expected!r}; ignored"))
        return None
    if parts[0] not in ids:
        problems.append(source.problem(f"{what} for image id {parts[0]} not in image_ids.txt; ignored"))
        return None
    return parts


def _read_image_ids(path: Path, problems: list[Problem]) -> dict[str, Source]:
    """``image_ids.txt``: each image id with the line that lists it first."""
    ids: dict[str, Source] = {}
    for source, line in read_lines(path):
        if line in ids:
            problems.append(source.problem(f"image id {line} listed again (first at {ids[line].line}); ignored"))
        else:
            ids[line] = source
    return ids


def _read_labels(path: Path, ids: dict[str, Source], problems: list[Problem]) -> tuple[dict[str, int], set[str]]:
    """``class_labels.txt``: (label of each image id, image ids whose label is not an integer >= 0)."""
    labels: dict[str, int] = {}
    skipped: set[str] = set()
    for source, line in read_lines(path):
        parts = _entry(source, line, 2, "<image_id>,<label>", "class label", ids, problems)
        if parts is None:
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
    return labels, skipped


def _read_sizes(path: Path, ids: dict[str, Source], problems: list[Problem]) -> dict[str, tuple[int, int]]:
    """``image_sizes.txt`` (optional): the ``(width, height)`` of each image id it states."""
    sizes: dict[str, tuple[int, int]] = {}
    if not path.is_file():
        return sizes
    for source, line in read_lines(path):
        parts = _entry(source, line, 3, "<image_id>,<width>,<height>", "image size", ids, problems)
        if parts is None:
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
    return sizes


def _read_localization(path: Path, ids: dict[str, Source], mask_root: Path, problems: list[Problem]) -> _Localization:
    """``localization.txt`` (optional): boxes or masks, as its first well-formed line says."""
    found = _Localization()
    if not path.is_file():
        return found
    kind: str | None = None  # "boxes" or "masks", from the first well-formed line
    for source, line in read_lines(path):
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
        elif kind == "boxes":
            _add_box(found, source, line, ids, problems)
        else:
            _add_mask(found, source, line, ids, mask_root, problems)
    return found


def _add_box(found: _Localization, source: Source, line: str, ids: dict[str, Source], problems: list[Problem]) -> None:
    """A ``<image_id>,<x0>,<y0>,<x1>,<y1>`` line of ``localization.txt``."""
    parts = _entry(source, line, 5, "<image_id>,<x0>,<y0>,<x1>,<y1>", "box", ids, problems)
    if parts is None:
        return
    try:
        box = parse_box(parts[1:])
    except ValueError:
        problems.append(source.problem(f"box {parts[1:]} of image id {parts[0]} is not four numbers; ignored"))
        return
    found.boxes.setdefault(parts[0], []).append((box, source))


def _add_mask(
    found: _Localization, source: Source, line: str, ids: dict[str, Source], mask_root: Path, problems: list[Problem]
) -> None:
    """A ``<image_id>,<mask_path>,<ignore_path>`` line of ``localization.txt``."""
    parts = _entry(source, line, 3, "<image_id>,<mask_path>,<ignore_path>", "mask", ids, problems)
    if parts is None:
        return
    image_id, mask, ignore = parts
    if not mask:
        problems.append(source.problem(f"empty mask path for image id {image_id}; ignored"))
        return
    if image_id not in found.masks:
        found.masks[image_id] = [mask_root / mask]
        found.ignores[image_id] = mask_root / ignore if ignore else None
        return
    if ignore:
        problems.append(
            source.problem(
                f"ignore mask {ignore} on a later line of image id {image_id}; only the first line "
                "may name it; ignore path ignored"
            )
        )
    found.masks[image_id].append(mask_root / mask)


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
