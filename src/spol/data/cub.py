"""CUB-200-2011 as distributed (``CUB_200_2011.tgz``, optionally with ``segmentations.tgz``).

Folder (``root``; its parent holding ``CUB_200_2011/`` is accepted too)::

    images.txt               <image_id> <relative path>             e.g. "1 001.Black_footed_Albatross/x.jpg"
    classes.txt              <class_id> <name>                      1-based ids
    image_class_labels.txt   <image_id> <class_id>
    bounding_boxes.txt       <image_id> <x> <y> <width> <height>    floats, one box per image
    train_test_split.txt     <image_id> <1 train | 0 test>
    images/<relative path>
    segmentations/<relative path with .png>   optional; ``segmentations.tgz`` extracts beside
                                              ``CUB_200_2011/``, so ``root/../segmentations`` is
                                              looked at too

Records: ``image_id`` is the relative path, labels are 0-based (class id 1 is label 0, in the
order of the sorted class ids), boxes are ``(x, y, x + width, y + height)``, splits ``"train"`` and
``"test"`` (CUB has no validation split: see `spol.data.hold_out_val`), ``mask_paths`` the
segmentation PNG when the segmentations are present.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypeAlias

from spol.data._reading import PendingRecord, Source, finish_records, read_lines
from spol.data.records import Box, Dataset, DatasetFormatError, Problem, Split

logger = logging.getLogger(__name__)

_Rows: TypeAlias = dict[str, tuple[Source, list[str]]]
"""Lines of an index file by their first field: ``key -> (source, [other fields])``."""

INDEX_FILES = ("images.txt", "classes.txt", "image_class_labels.txt", "bounding_boxes.txt", "train_test_split.txt")


def _locate(root: Path) -> Path:
    if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
        return root / "CUB_200_2011"
    return root


def _keyed(path: Path, fields: int, expected: str, problems: list[Problem]) -> _Rows:
    """Lines of ``<key> <value>...`` keyed by their first field; a repeated key keeps its first line."""
    rows: _Rows = {}
    for source, line in read_lines(path):
        parts = line.split(maxsplit=fields - 1)
        if len(parts) != fields:
            problems.append(source.problem(f"malformed line {line!r}: expected {expected!r}; ignored"))
            continue
        key = parts[0]
        if key in rows:
            problems.append(source.problem(f"duplicate id {key} (first at {rows[key][0].line}); ignored"))
            continue
        rows[key] = (source, parts[1:])
    return rows


def _check_folder(root: Path) -> None:
    """Raise `DatasetFormatError` naming what `root` lacks of a CUB-200-2011 folder."""
    missing = [name for name in INDEX_FILES if not (root / name).is_file()]
    if not (root / "images").is_dir():
        missing.append("images/")
    if missing:
        raise DatasetFormatError(
            f"{root} is not a CUB-200-2011 folder: missing {', '.join(missing)}. Expected the extracted "
            f"CUB_200_2011/ folder holding {', '.join(INDEX_FILES)} and images/"
        )


def _read_classes(path: Path, problems: list[Problem]) -> tuple[list[str], dict[int, int]]:
    """``classes.txt``: (class names in label order, label of each class id)."""
    class_ids: dict[int, str] = {}
    for key, (source, (name,)) in _keyed(path, 2, "<class_id> <name>", problems).items():
        try:
            class_id = int(key)
        except ValueError:
            problems.append(source.problem(f"class id {key!r} is not an integer; class ignored"))
            continue
        class_ids[class_id] = name
    ordered = sorted(class_ids)
    if ordered != list(range(1, len(ordered) + 1)):
        problems.append(Problem(f"class ids are not 1..{len(ordered)}; labels follow the sorted ids", line=f"{path}:1"))
    return [class_ids[class_id] for class_id in ordered], {class_id: label for label, class_id in enumerate(ordered)}


def _read_images(path: Path, problems: list[Problem]) -> _Rows:
    """``images.txt``: ``image id -> (source, [relative path])``, each path listed once."""
    images = _keyed(path, 2, "<image_id> <relative path>", problems)
    seen_paths: dict[str, Source] = {}
    for key, (source, (relative,)) in list(images.items()):
        if relative in seen_paths:
            problems.append(
                source.problem(f"image {relative} listed again (first at {seen_paths[relative].line}); ignored")
            )
            del images[key]
        else:
            seen_paths[relative] = source
    return images


def _read_labels(
    path: Path, images: _Rows, label_of_class: dict[int, int], problems: list[Problem]
) -> tuple[dict[str, int], set[str]]:
    """``image_class_labels.txt``: (label of each image id, image ids whose class id is unknown)."""
    labels: dict[str, int] = {}
    unusable: set[str] = set()
    for key, (source, (value,)) in _keyed(path, 2, "<image_id> <class_id>", problems).items():
        if key not in images:
            problems.append(source.problem(f"class label for unknown image id {key}; ignored"))
            continue
        try:
            labels[key] = label_of_class[int(value)]
        except (ValueError, KeyError):
            problems.append(source.problem(f"unknown class id {value!r} for image id {key}; image skipped"))
            unusable.add(key)
    return labels, unusable


def _read_splits(path: Path, images: _Rows, problems: list[Problem]) -> tuple[dict[str, Split], set[str]]:
    """``train_test_split.txt``: (split of each image id, image ids whose split is neither 1 nor 0)."""
    splits: dict[str, Split] = {}
    unusable: set[str] = set()
    for key, (source, (value,)) in _keyed(path, 2, "<image_id> <1|0>", problems).items():
        if key not in images:
            problems.append(source.problem(f"split for unknown image id {key}; ignored"))
        elif value in ("1", "0"):
            splits[key] = "train" if value == "1" else "test"
        else:
            problems.append(
                source.problem(f"split {value!r} for image id {key} is not 1 (train) or 0 (test); image skipped")
            )
            unusable.add(key)
    return splits, unusable


def _read_boxes(path: Path, images: _Rows, problems: list[Problem]) -> dict[str, list[tuple[Box, Source]]]:
    """``bounding_boxes.txt``: the one box of each image id, as ``(x, y, x + width, y + height)``."""
    boxes: dict[str, list[tuple[Box, Source]]] = {}
    for source, line in read_lines(path):
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError(f"{len(parts)} fields")
            x, y, width, height = (float(v) for v in parts[1:])
        except ValueError:
            problems.append(
                source.problem(f"malformed line {line!r}: expected '<image_id> <x> <y> <width> <height>'; ignored")
            )
            continue
        if parts[0] not in images:
            problems.append(source.problem(f"box for unknown image id {parts[0]}; ignored"))
            continue
        if parts[0] in boxes:
            first = boxes[parts[0]][0][1].line
            problems.append(
                source.problem(f"duplicate id {parts[0]} (first at {first}; CUB has one box per image); ignored")
            )
            continue
        boxes[parts[0]] = [((x, y, x + width, y + height), source)]
    return boxes


def _pending_records(
    root: Path,
    images: _Rows,
    labels: dict[str, int],
    splits: dict[str, Split],
    boxes: dict[str, list[tuple[Box, Source]]],
    reported: set[str],
    problems: list[Problem],
) -> list[PendingRecord]:
    """The images of ``images.txt`` with a label and a split, in its order; the others are problems."""
    masks_dir = next((d for d in (root / "segmentations", root.parent / "segmentations") if d.is_dir()), None)
    pending: list[PendingRecord] = []
    for key, (source, (relative,)) in images.items():
        if key in reported:
            continue
        if key not in labels or key not in splits:
            lacking = " or ".join(
                name
                for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", splits))
                if key not in table
            )
            problems.append(source.problem(f"image id {key} has no entry in {lacking}; image skipped"))
            continue
        if key not in boxes:
            problems.append(source.problem(f"image id {key} has no box in bounding_boxes.txt"))
        pending.append(
            PendingRecord(
                image_id=relative,
                path=root / "images" / relative,
                label=labels[key],
                split=splits[key],
                boxes=boxes.get(key, []),
                mask_paths=_mask_paths(masks_dir, relative, problems),
            )
        )
    return pending


def _mask_paths(masks_dir: Path | None, relative: str, problems: list[Problem]) -> tuple[Path, ...]:
    """The segmentation mask of an image, when the segmentations are present; a missing one is a problem."""
    if masks_dir is None:
        return ()
    mask = (masks_dir / relative).with_suffix(".png")
    if mask.is_file():
        return (mask,)
    problems.append(Problem(f"segmentation mask missing for image {relative}", path=str(mask)))
    return ()


def read_cub(root: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True) -> Dataset:
    """Read CUB-200-2011 from its extracted folder.

    Args:
        root: The ``CUB_200_2011`` folder (or the folder holding it).
        workers: Threads reading image headers (sizes); default `spol.data.images.default_workers`.
        progress: Show a progress bar while reading image headers.

    Returns:
        The dataset, format ``"cub"``; entries that could not be used are in ``problems``.

    Raises:
        DatasetFormatError: an index file or ``images/`` is missing.
    """
    root = _locate(Path(root))
    _check_folder(root)
    problems: list[Problem] = []
    class_names, label_of_class = _read_classes(root / "classes.txt", problems)
    images = _read_images(root / "images.txt", problems)
    labels, bad_labels = _read_labels(root / "image_class_labels.txt", images, label_of_class, problems)
    splits, bad_splits = _read_splits(root / "train_test_split.txt", images, problems)
    boxes = _read_boxes(root / "bounding_boxes.txt", images, problems)
    # Images whose label or split line is present but unusable: their problem is already reported.
    reported = bad_labels | bad_splits
    pending = _pending_records(root, images, labels, splits, boxes, reported, problems)
    records = finish_records(pending, problems, workers=workers, progress=progress)
    logger.info("CUB %s: %d images, %d classes, %d problems", root, len(records), len(class_names), len(problems))
    return Dataset(format="cub", root=root, class_names=class_names, records=records, problems=problems)
