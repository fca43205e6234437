"""Your own data: a folder of images plus one CSV file of labels and boxes.

``labels.csv`` (comma-separated, UTF-8, with a header; column order free)::

    image,label,x0,y0,x1,y1,split
    birds/a.jpg,sparrow,10,20,110,90,test
    birds/a.jpg,sparrow,120,5,200,60,test     one row per box: a second box of birds/a.jpg
    birds/b.jpg,robin,,,,,                    no box (an image for training)

- ``image``: path relative to the CSV's folder (or absolute); it is the record's ``image_id``.
- ``label``: a class name, or a class index. With a ``classes.txt`` beside the CSV (one class
  name per line, line order = label order) a label is looked up by name first, then taken as an
  index into that list, and anything else is an unknown class. Without it, labels that are all
  non-negative integers are indices (class names ``"0"``, ``"1"``, ...), and indices no row uses
  (labels ``1,2,3`` leave class 0 empty) are a problem; otherwise every label is a name and the
  classes are the sorted distinct names.
- ``x0,y0,x1,y1``: the box in original pixels (``x1 = x0 + width``); the four columns may be left
  out of the file, and left empty in a row (an image without box).
- ``split`` (optional column): ``train``, ``val`` or ``test``; an absent column or an empty cell
  means ``train`` (the common case of a folder of training images; mark evaluation images ``test``).

Rows of the same image must agree on label and split. Images in the folder that the CSV does not
list are not read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from spol.data._reading import (
    PendingRecord,
    Source,
    add_box,
    finish_records,
    parse_box,
    read_csv_rows,
    read_lines,
)
from spol.data.records import SPLITS, Box, Dataset, DatasetFormatError, Problem, Split

logger = logging.getLogger(__name__)

CSV_NAME = "labels.csv"
CLASSES_NAME = "classes.txt"
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
KNOWN_COLUMNS = frozenset({"image", "label", "split", *BOX_COLUMNS})


class _Row(NamedTuple):
    """A usable row of the CSV file: the image, its label cell, its box if any, and its split."""

    source: Source
    image: str
    label: str
    box: Box | None
    split: Split


def read_csv_folder(root: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True) -> Dataset:
    """Read a folder of images described by a CSV file (see the module docstring for the format).

    Args:
        root: The folder holding ``labels.csv``, or the path of the CSV file itself (images are
            then relative to the file's folder).
        workers: Threads reading image headers (sizes); default `spol.data.images.default_workers`.
        progress: Show a progress bar while reading image headers.

    Returns:
        The dataset, format ``"csv"``.

    Raises:
        DatasetFormatError: no CSV file, no header, or no ``image`` / ``label`` column.
    """
    root = Path(root)
    csv_path = root if root.is_file() else root / CSV_NAME
    folder = csv_path.parent
    header, rows = _read_csv(root, csv_path)
    problems: list[Problem] = []
    column, with_boxes = _columns(header, f"{csv_path}:1", problems)
    entries = _read_rows(csv_path, rows, len(header), column, with_boxes, problems)
    class_names, label_index = _classes(csv_path, [entry.label for entry in entries], problems)
    pending = _pending_records(entries, folder, class_names, label_index, problems)
    records = finish_records(pending, problems, workers=workers, progress=progress)
    logger.info("CSV %s: %d images, %d classes, %d problems", csv_path, len(records), len(class_names), len(problems))
    return Dataset(format="csv", root=folder, class_names=class_names, records=records, problems=problems)


def _read_csv(root: Path, csv_path: Path) -> tuple[list[str], list[list[str]]]:
    """(the header's column names, lowercased, and the rows after it) of the CSV file.

    Raises:
        DatasetFormatError: no CSV file, one that is not UTF-8 CSV, or no ``image`` / ``label`` column.
    """
    if not csv_path.is_file():
        raise DatasetFormatError(
            f"no {CSV_NAME} in {root}: expected a CSV file with the header image,label,x0,y0,x1,y1[,split] "
            "(or pass the CSV file's path)"
        )
    rows = read_csv_rows(csv_path)
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "image" not in header or "label" not in header:
        raise DatasetFormatError(
            f"{csv_path} must start with a header naming the columns image and label "
            f"(and optionally x0,y0,x1,y1,split); got {rows[0] if rows else 'an empty file'}"
        )
    return header, rows[1:]


def _columns(header: list[str], header_line: str, problems: list[Problem]) -> tuple[dict[str, int], bool]:
    """(index of each known column, whether all four box columns are present); odd columns are problems."""
    unknown = [name for name in header if name not in KNOWN_COLUMNS]
    if unknown:
        problems.append(
            Problem(
                f"unknown column(s) {', '.join(unknown)}; ignored (known: {', '.join(sorted(KNOWN_COLUMNS))})",
                line=header_line,
            )
        )
    has_boxes = [name in header for name in BOX_COLUMNS]
    if any(has_boxes) and not all(has_boxes):
        problems.append(Problem("box columns need all of x0,y0,x1,y1; boxes ignored", line=header_line))
    return {name: header.index(name) for name in KNOWN_COLUMNS if name in header}, all(has_boxes)


def _read_rows(
    csv_path: Path,
    rows: list[list[str]],
    width: int,
    column: dict[str, int],
    with_boxes: bool,
    problems: list[Problem],
) -> list[_Row]:
    """The usable rows after the header (the first row is line 2); blank rows are skipped, bad ones are problems."""
    entries: list[_Row] = []
    for number, row in enumerate(rows, start=2):
        source = Source(line=f"{csv_path}:{number}")
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > width:
            problems.append(source.problem(f"malformed line: {len(row)} fields for {width} columns; ignored"))
            continue
        row = row + [""] * (width - len(row))  # trailing empty cells may be left out
        entry = _parse_row(source, {name: row[index].strip() for name, index in column.items()}, with_boxes, problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_row(source: Source, cells: dict[str, str], with_boxes: bool, problems: list[Problem]) -> _Row | None:
    """One row's cells by column name as a `_Row`; None (and a problem) when a cell is unusable."""
    image, label_text = cells["image"], cells["label"]
    if not image or not label_text:
        problems.append(source.problem("malformed line: empty image or label; ignored"))
        return None
    split = cells.get("split") or "train"
    if split not in SPLITS:
        problems.append(source.problem(f"unknown split {split!r} (expected train, val or test); ignored"))
        return None
    box = None
    if with_boxes:
        values = [cells[name] for name in BOX_COLUMNS]
        if any(values):
            try:
                box = parse_box(values)
            except ValueError:
                problems.append(
                    source.problem(f"malformed box {values}: give four numbers or leave all four empty; ignored")
                )
                return None
    return _Row(source, image, label_text, box, split)


def _pending_records(
    entries: list[_Row],
    folder: Path,
    class_names: list[str],
    label_index: Callable[[str], int | None],
    problems: list[Problem],
) -> list[PendingRecord]:
    """The rows grouped by image (first row first); rows that disagree with their image's first are problems."""
    pending: dict[str, PendingRecord] = {}
    first_row: dict[str, Source] = {}
    seen_boxes: dict[tuple[str, Box], Source] = {}
    for source, image, label_text, box, split in entries:
        label = label_index(label_text)
        if label is None:
            problems.append(
                source.problem(
                    f"unknown class {label_text!r} ({len(class_names)} classes in {folder / CLASSES_NAME}); ignored"
                )
            )
            continue
        image_id = Path(image).as_posix()
        record = pending.get(image_id)
        if record is None:
            record = pending[image_id] = PendingRecord(image_id, folder / image, label, split)
            first_row[image_id] = source
        elif (record.label, record.split) != (label, split):
            problems.append(
                source.problem(
                    f"image {image_id} has label {label_text!r} and split {split} here but "
                    f"{class_names[record.label]!r} and {record.split} at {first_row[image_id].line}; ignored"
                )
            )
            continue
        if box is not None:
            add_box(record, box, source, seen_boxes, problems)
    return list(pending.values())


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _classes(
    csv_path: Path, labels: list[str], problems: list[Problem]
) -> tuple[list[str], Callable[[str], int | None]]:
    """(class names, function from a label cell to its index or None), by the rules of the module docstring."""
    classes_file = csv_path.parent / CLASSES_NAME
    if classes_file.is_file():
        names: list[str] = []
        for source, line in read_lines(classes_file):
            if line in names:
                problems.append(source.problem(f"class {line!r} listed again; labels keep its first line"))
            names.append(line)
        by_name = {name: index for index, name in reversed(list(enumerate(names)))}

        def lookup(text: str) -> int | None:
            if text in by_name:
                return by_name[text]
            return int(text) if _is_index(text) and int(text) < len(names) else None

        return names, lookup
    if labels and all(_is_index(text) for text in labels):
        count = max(int(text) for text in labels) + 1
        unused = sorted(set(range(count)) - {int(text) for text in labels})
        if unused:
            shown = ", ".join(map(str, unused[:5])) + (", ..." if len(unused) > 5 else "")
            problems.append(
                Problem(
                    f"integer labels are class indices, so there are {count} classes and {len(unused)} of them "
                    f"({shown}) have no image; if the labels are names (e.g. numbered from 1), list them one per "
                    f"line in {CLASSES_NAME} beside {csv_path.name}",
                    path=str(csv_path),
                )
            )
        return [str(i) for i in range(count)], lambda text: int(text)
    names = sorted(set(labels))
    by_name = {name: index for index, name in enumerate(names)}
    return names, by_name.get
