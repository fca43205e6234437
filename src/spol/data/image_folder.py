"""An image folder in torchvision's ``ImageFolder`` layout, with optional boxes in ``boxes.csv``.

Layout (``root``)::

    root/cat/x.jpg                 image cat/x.jpg, class cat
    root/cat/indoor/y.png          sub-folders are walked: image cat/indoor/y.png, class cat
    root/dog/z.jpeg                image dog/z.jpeg, class dog
    root/boxes.csv                 optional

- Classes: the sorted names of the sub-folders of ``root`` (torchvision's ``ImageFolder`` order);
  the label of an image is the index of its class folder. A class folder without images keeps its
  index (and is a problem).
- Images: the files anywhere under a class folder whose extension (any case) is one of
  `IMAGE_EXTENSIONS`, in torchvision's order (folders by path, files by name). The image id is the
  path relative to ``root``, with ``/``. Every image is a ``train`` image: the pipeline draws its
  validation and test images from the boxed ones.
- Skipped, each reported as a problem: hidden files and folders (name starting with ``.``), files
  of another extension, and files directly in ``root`` other than ``boxes.csv``.
- ``boxes.csv`` (comma-separated, UTF-8, with a header; column order free)::

      image,x0,y0,x1,y1
      cat/x.jpg,10,20,110,90
      cat/x.jpg,120,5,200,60        one row per box: a second box of cat/x.jpg

  ``image`` is an image id as above; ``x0,y0,x1,y1`` is the box in the pixels of the image as
  stored (``x1 = x0 + width``). Images without a row have no box.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from spol.data._reading import PendingRecord, Source, add_box, finish_records, parse_box, read_csv_rows
from spol.data.records import Box, Dataset, DatasetFormatError, Problem

logger = logging.getLogger(__name__)

BOXES_NAME = "boxes.csv"
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
BOXES_HEADER = ("image", *BOX_COLUMNS)
LAYOUT = "root/<class>/<image>"
# torchvision.datasets.folder.IMG_EXTENSIONS, copied: importing torchvision costs seconds.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def read_image_folder(root: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True) -> Dataset:
    """Read a folder of class folders of images, and its ``boxes.csv`` if any (see the module docstring).

    Args:
        root: The folder holding one sub-folder per class.
        workers: Threads reading image headers (sizes); default `spol.data.images.default_workers`.
        progress: Show a progress bar while reading image headers.

    Returns:
        The dataset, format ``"imagefolder"``; every record is a ``train`` record.

    Raises:
        DatasetFormatError: `root` is not a folder, holds no class folder, or its ``boxes.csv`` cannot
            be read or lacks a column of ``image,x0,y0,x1,y1``.
    """
    root = Path(root)
    problems: list[Problem] = []
    class_names = _class_folders(root, problems)
    pending: dict[str, PendingRecord] = {}
    for label, name in enumerate(class_names):
        image_ids = _class_images(root, name, problems)
        if not image_ids:
            problems.append(
                Problem(f"class folder holds no image file; class {name} keeps label {label}", path=str(root / name))
            )
        for image_id in image_ids:
            pending[image_id] = PendingRecord(image_id, root / image_id, label, "train")
    if (root / BOXES_NAME).is_file():
        _read_boxes(root / BOXES_NAME, pending, problems)
    records = finish_records(list(pending.values()), problems, workers=workers, progress=progress)
    logger.info(
        "image folder %s: %d images, %d classes, %d problems", root, len(records), len(class_names), len(problems)
    )
    return Dataset(format="imagefolder", root=root, class_names=class_names, records=records, problems=problems)


def _class_folders(root: Path, problems: list[Problem]) -> list[str]:
    """The sorted non-hidden sub-folders of `root`; anything else in it but ``boxes.csv`` is a problem."""
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise DatasetFormatError(f"{root} {state}: expected an image folder laid out as {LAYOUT}")
    names = []
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                problems.append(Problem(f"hidden {_kind(entry)}; skipped", path=entry.path))
            elif entry.is_dir():
                names.append(entry.name)
            elif entry.name != BOXES_NAME:
                problems.append(Problem("not inside a class folder; skipped", path=entry.path))
    if not names:
        raise DatasetFormatError(
            f"{root} is not an image folder: it holds no class folder. Expected {LAYOUT}, one sub-folder per class"
        )
    return names


def _kind(entry: os.DirEntry[str]) -> str:
    return "folder" if entry.is_dir() else "file"


def _class_images(root: Path, name: str, problems: list[Problem]) -> list[str]:
    """Ids of the images under ``root/name``, in torchvision's order; skipped files and folders are problems."""
    listed: list[tuple[str, list[str]]] = []  # (folder id, its image file names)
    _walk(root, name, frozenset(), listed, problems)
    return [f"{folder}/{file}" for folder, files in sorted(listed, key=lambda item: item[0]) for file in files]


def _walk(
    root: Path, folder: str, ancestors: frozenset[str], listed: list[tuple[str, list[str]]], problems: list[Problem]
) -> None:
    """Append ``(folder, sorted image names)`` for ``root/folder`` and each folder below it to `listed`."""
    path = root / folder
    real = os.path.realpath(path)
    if real in ancestors:  # folder links are followed, as torchvision does; a loop would never end
        problems.append(Problem("folder links back to a folder above it; skipped", path=str(path)))
        return
    try:
        with os.scandir(path) as entries:
            children = sorted(entries, key=lambda e: e.name)
    except OSError as error:
        problems.append(Problem(f"cannot list folder ({error}); skipped", path=str(path)))
        return
    files = []
    for entry in children:
        if entry.name.startswith("."):
            problems.append(Problem(f"hidden {_kind(entry)}; skipped", path=entry.path))
        elif entry.is_dir():
            _walk(root, f"{folder}/{entry.name}", ancestors | {real}, listed, problems)
        elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
            files.append(entry.name)
        else:
            extension = os.path.splitext(entry.name)[1]
            problems.append(
                Problem(
                    f"not an image file ({f'extension {extension}' if extension else 'no extension'}); skipped",
                    path=entry.path,
                )
            )
    listed.append((folder, files))


def _read_boxes(path: Path, pending: dict[str, PendingRecord], problems: list[Problem]) -> None:
    """Add the boxes of ``boxes.csv`` to their images; rows that cannot be used are problems.

    Raises:
        DatasetFormatError: the file cannot be read as UTF-8 CSV or its header lacks a column.
    """
    rows = read_csv_rows(path)
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    missing = [name for name in BOXES_HEADER if name not in header]
    if missing:
        raise DatasetFormatError(
            f"{path} must start with the header {','.join(BOXES_HEADER)} (any column order); "
            f"missing {', '.join(missing)} in {rows[0] if rows else 'an empty file'}"
        )
    unknown = [name for name in header if name not in BOXES_HEADER]
    if unknown:
        problems.append(Problem(f"unknown column(s) {', '.join(unknown)}; ignored", line=f"{path}:1"))
    column = {name: header.index(name) for name in BOXES_HEADER}
    seen: dict[tuple[str, Box], Source] = {}
    for number, row in enumerate(rows[1:], start=2):
        source = Source(line=f"{path}:{number}")
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.append(source.problem(f"malformed line: {len(row)} fields for {len(header)} columns; ignored"))
            continue
        row = row + [""] * (len(header) - len(row))
        image = row[column["image"]].strip()
        if not image:
            problems.append(source.problem("malformed line: empty image; ignored"))
            continue
        values = [row[column[name]].strip() for name in BOX_COLUMNS]
        try:
            box = parse_box(values)
        except ValueError:
            problems.append(source.problem(f"malformed box {values} of image {image}: expected four numbers; ignored"))
            continue
        image_id = Path(image).as_posix()
        record = pending.get(image_id)
        if record is None:
            problems.append(
                source.problem(f"image {image} is not an image of the folder ({LAYOUT}); its box is ignored")
            )
            continue
        add_box(record, box, source, seen, problems)
