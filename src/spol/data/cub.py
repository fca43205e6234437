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

from spol.data._reading import PendingRecord, Source, finish_records, read_lines
from spol.data.records import Box, Dataset, DatasetFormatError, Problem, Split

logger = logging.getLogger(__name__)

INDEX_FILES = ("images.txt", "classes.txt", "image_class_labels.txt", "bounding_boxes.txt", "train_test_split.txt")


def _locate(root: Path) -> Path:
    if not (root / "images.txt").is_file() and (root / "CUB_200_2011" / "images.txt").is_file():
        return root / "CUB_200_2011"
    return root


def _keyed(path: Path, fields: int, expected: str, problems: list[Problem]) -> dict[str, tuple[Source, list[str]]]:
    """Lines of ``<key> <value>...`` keyed by their first field; a repeated key keeps its first line."""
    rows: dict[str, tuple[Source, list[str]]] = {}
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
    missing = [name for name in INDEX_FILES if not (root / name).is_file()]
    if not (root / "images").is_dir():
        missing.append("images/")
    if missing:
        raise DatasetFormatError(
            f"{root} is not a CUB-200-2011 folder: missing {', '.join(missing)}. Expected the extracted "
            f"CUB_200_2011/ folder holding {', '.join(INDEX_FILES)} and images/"
        )
    problems: list[Problem] = []

    classes = _keyed(root / "classes.txt", 2, "<class_id> <name>", problems)
    class_ids: dict[int, str] = {}
    for key, (source, (name,)) in classes.items():
        try:
            class_id = int(key)
        except ValueError:
            problems.append(source.problem(f"class id {key!r} is not an integer; class ignored"))
            continue
        class_ids[class_id] = name
    ordered = sorted(class_ids)
    if ordered != list(range(1, len(ordered) + 1)):
        problems.append(
            Problem(
                f"class ids are not 1..{len(ordered)}; labels follow the sorted ids",
                line=f"{root / 'classes.txt'}:1",
            )
        )
    label_of_class = {class_id: label for label, class_id in enumerate(ordered)}
    class_names = [class_ids[class_id] for class_id in ordered]

    images = _keyed(root / "images.txt", 2, "<image_id> <relative path>", problems)
    seen_paths: dict[str, Source] = {}
    for key, (source, (relative,)) in list(images.items()):
        if relative in seen_paths:
            problems.append(
                source.problem(f"image {relative} listed again (first at {seen_paths[relative].line}); ignored")
            )
            del images[key]
        else:
            seen_paths[relative] = source

    # Images whose label or split line is present but unusable: their problem is already reported.
    reported: set[str] = set()
    labels: dict[str, int] = {}
    for key, (source, (value,)) in _keyed(
        root / "image_class_labels.txt", 2, "<image_id> <class_id>", problems
    ).items():
        if key not in images:
            problems.append(source.problem(f"class label for unknown image id {key}; ignored"))
            continue
        try:
            labels[key] = label_of_class[int(value)]
        except (ValueError, KeyError):
            problems.append(source.problem(f"unknown class id {value!r} for image id {key}; image skipped"))
            reported.add(key)

    splits: dict[str, Split] = {}
    for key, (source, (value,)) in _keyed(root / "train_test_split.txt", 2, "<image_id> <1|0>", problems).items():
        if key not in images:
            problems.append(source.problem(f"split for unknown image id {key}; ignored"))
        elif value in ("1", "0"):
            splits[key] = "train" if value == "1" else "test"
        else:
            problems.append(
                source.problem(f"split {value!r} for image id {key} is not 1 (train) or 0 (test); image skipped")
            )
            reported.add(key)

    boxes: dict[str, list[tuple[Box, Source]]] = {}
    boxes_path = root / "bounding_boxes.txt"
    for source, line in read_lines(boxes_path):
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

    masks_dir = next((d for d in (root / "segmentations", root.parent / "segmentations") if d.is_dir()), None)
    pending = []
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
        mask_paths: tuple[Path, ...] = ()
        if masks_dir is not None:
            mask = (masks_dir / relative).with_suffix(".png")
            if mask.is_file():
                mask_paths = (mask,)
            else:
                problems.append(Problem(f"segmentation mask missing for image {relative}", path=str(mask)))
        pending.append(
            PendingRecord(
                image_id=relative,
                path=root / "images" / relative,
                label=labels[key],
                split=splits[key],
                boxes=boxes.get(key, []),
                mask_paths=mask_paths,
            )
        )
    records = finish_records(pending, problems, workers=workers, progress=progress)
    logger.info("CUB %s: %d images, %d classes, %d problems", root, len(records), len(class_names), len(problems))
    return Dataset(format="cub", root=root, class_names=class_names, records=records, problems=problems)
