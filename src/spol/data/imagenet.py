"""ILSVRC 2012 (ImageNet-1k) for localization: train images by class folder, the val set with boxes.

The ILSVRC **val** set is the WSOL **test** set (as in wsolevaluation and every WSOL paper), so its
records get split ``"test"``; carve a validation split out of train with `spol.data.hold_out_val`,
or read wsolevaluation's metadata (format ``"wsol"``) for its ImageNetV2 validation split.

Accepted layouts (``root``):

- Images: ``root/train/<wnid>/*.JPEG`` and ``root/val/*.JPEG`` (``val/<wnid>/*.JPEG``, as after
  the common ``valprep.sh``, works too); or the Kaggle "ImageNet Object Localization Challenge"
  tree, ``root/ILSVRC/Data/CLS-LOC/{train,val}`` (``root`` may also be the ``ILSVRC`` folder).
  ``Data/CLS-LOC/test`` (no labels) is not read. Image files end in .JPEG/.jpg/.jpeg/.png (any case).
- Classes: ``LOC_synset_mapping.txt`` (``<wnid> <names>`` per line; line order = label order) in
  ``root`` (or beside the ``ILSVRC`` folder); without it, the sorted ``train/`` folder names
  (torchvision's ``ImageFolder`` order) with the wnids as names.
- Boxes, per image, first found of:

  1. a Pascal-VOC XML file named like the image (``<stem>.xml``, ``<size>`` and one ``<object>``
     per box, ``<bndbox>`` ``xmin ymin xmax ymax`` read as ``x0 y0 x1 y1``), searched in the
     first of these folders holding any XML: ``Annotations/CLS-LOC/<split>`` (Kaggle),
     ``<split>/`` itself, ``<split>_annotations/``, ``bbox/<split>/`` and, for val, ``bbox/``
     (the ``ILSVRC2012_bbox_*`` archives extracted there); directly or in ``<wnid>/`` subfolders;
  2. ``LOC_val_solution.csv`` / ``LOC_train_solution.csv`` (``ImageId,PredictionString`` with
     ``"wnid x0 y0 x1 y1 wnid x0 y0 x1 y1 ..."``).

  A train image without boxes is normal (about 40% of ILSVRC train has boxes). A val image
  takes its label from its annotation's first object (or from its ``<wnid>`` folder); objects
  of another class are reported and dropped. Sizes come from the XML where given, else from
  the image header.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from spol.data._reading import PendingRecord, Source, finish_records, parse_box, read_csv_rows, read_lines
from spol.data.records import Box, Dataset, DatasetFormatError, Problem, Split
from spol.progress import track

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})
SYNSET_MAPPING = "LOC_synset_mapping.txt"
SOLUTION_FILES = {"train": "LOC_train_solution.csv", "val": "LOC_val_solution.csv"}


class _Annotation:
    """Boxes of one image, with their class wnids, as read from an XML file or a CSV line."""

    def __init__(self, source: Source, objects: list[tuple[str, Box]], size: tuple[int, int] | None) -> None:
        self.source = source
        self.objects = objects
        self.size = size


def _layout(root: Path) -> tuple[Path, list[Path], list[Path]]:
    """(images folder, annotation roots, folders where LOC_* files may lie)."""
    for base, meta in ((root / "ILSVRC", root), (root, root.parent)):
        images = base / "Data" / "CLS-LOC"
        if images.is_dir():
            return images, [base / "Annotations" / "CLS-LOC"], [meta, base]
    return root, [root / "Annotations" / "CLS-LOC"], [root]


def _find(folders: list[Path], name: str) -> Path | None:
    return next((folder / name for folder in folders if (folder / name).is_file()), None)


def _scan(folder: Path, suffixes: Iterable[str], depth: int) -> dict[str, Path]:
    """Files with one of `suffixes` directly in `folder` or (depth 2) in its subfolders, by stem."""
    found: dict[str, Path] = {}
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_file() and os.path.splitext(entry.name)[1].lower() in suffixes:
                found.setdefault(os.path.splitext(entry.name)[0], Path(entry.path))
            elif depth > 1 and entry.is_dir():
                found.update({k: v for k, v in _scan(Path(entry.path), suffixes, 1).items() if k not in found})
    return found


def _xml_files(images: Path, annotation_roots: list[Path], split: str) -> tuple[Path | None, dict[str, Path]]:
    candidates = [(a / split, 2) for a in annotation_roots]
    candidates += [(images / split, 2), (images / f"{split}_annotations", 2), (images / "bbox" / split, 2)]
    if split == "val":
        candidates.append((images / "bbox", 1))
    for folder, depth in candidates:
        if folder.is_dir():
            found = _scan(folder, {".xml"}, depth)
            if found:
                return folder, found
    return None, {}


def _parse_xml(path: Path) -> _Annotation:
    """Read a Pascal-VOC annotation; ValueError (naming the element) when it is malformed."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as error:
        raise ValueError(f"not a readable XML file: {error}") from error
    size = None
    width, height = tree.findtext("size/width"), tree.findtext("size/height")
    if width and height:
        try:
            size = (int(float(width)), int(float(height)))
        except ValueError as error:
            raise ValueError(f"<size> is not numeric: {width!r} x {height!r}") from error
        if size[0] <= 0 or size[1] <= 0:
            size = None  # some annotation tools write 0; fall back on the image header
    objects = []
    for index, obj in enumerate(tree.iterfind("object")):
        name = (obj.findtext("name") or "").strip()
        values = [obj.findtext(f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
        if not name or any(v is None for v in values):
            raise ValueError(f"<object> {index + 1} lacks <name> or a <bndbox> coordinate")
        try:
            objects.append((name, parse_box([str(v) for v in values])))
        except ValueError as error:
            raise ValueError(f"<object> {index + 1} has a non-numeric <bndbox>: {values}") from error
    return _Annotation(Source(path=str(path)), objects, size)


def _read_solution(path: Path, problems: list[Problem]) -> dict[str, _Annotation]:
    """``LOC_*_solution.csv`` rows by ImageId (the image file stem)."""
    annotations: dict[str, _Annotation] = {}
    rows = read_csv_rows(path)
    if not rows or [c.strip() for c in rows[0]] != ["ImageId", "PredictionString"]:
        raise DatasetFormatError(f"{path} must start with the header 'ImageId,PredictionString'")
    for number, row in enumerate(rows[1:], start=2):
        source = Source(line=f"{path}:{number}")
        if not row or not any(cell.strip() for cell in row):
            continue
        tokens = row[1].split() if len(row) == 2 else []
        if len(row) != 2 or not tokens or len(tokens) % 5:
            problems.append(
                source.problem("malformed line: expected 'ImageId,wnid x0 y0 x1 y1 [wnid x0 y0 x1 y1 ...]'; ignored")
            )
            continue
        try:
            objects = [(tokens[i], parse_box(tokens[i + 1 : i + 5])) for i in range(0, len(tokens), 5)]
        except ValueError:
            problems.append(source.problem("malformed line: a box coordinate is not a number; ignored"))
            continue
        image_id = row[0].strip()
        if image_id in annotations:
            problems.append(
                source.problem(f"duplicate ImageId {image_id} (first at {annotations[image_id].source.line}); ignored")
            )
            continue
        annotations[image_id] = _Annotation(source, objects, None)
    return annotations


def _classes(meta_folders: list[Path], train: Path | None, problems: list[Problem]) -> tuple[list[str], list[str]]:
    """(wnids in label order, class names)."""
    mapping = _find(meta_folders, SYNSET_MAPPING)
    if mapping is None:
        if train is None:
            raise DatasetFormatError(
                f"no {SYNSET_MAPPING} in {', '.join(map(str, meta_folders))} and no train/ folder: "
                "expected the class list, one '<wnid> <names>' per line, or train/<wnid>/ folders"
            )
        wnids = sorted(entry.name for entry in os.scandir(train) if entry.is_dir())
        return wnids, list(wnids)
    wnids, names = [], []
    for source, line in read_lines(mapping):
        wnid, _, name = line.partition(" ")
        if wnid in wnids:
            problems.append(source.problem(f"duplicate wnid {wnid}; ignored"))
            continue
        wnids.append(wnid)
        names.append(name.strip() or wnid)
    if not wnids:
        raise DatasetFormatError(f"{mapping} lists no class: expected one '<wnid> <names>' per line")
    return wnids, names


def _image_files(folder: Path) -> tuple[list[Path], dict[str, list[Path]]]:
    """(image files directly in `folder`, image files of each subfolder by name), sorted."""
    flat: list[Path] = []
    nested: dict[str, list[Path]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                with os.scandir(entry.path) as inner:
                    nested[entry.name] = sorted(
                        Path(e.path)
                        for e in inner
                        if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
                    )
            elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                flat.append(Path(entry.path))
    return sorted(flat), dict(sorted(nested.items()))


def read_imagenet(root: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True) -> Dataset:
    """Read ILSVRC 2012 for localization: train (label from folder, boxes where annotated), val as ``"test"``.

    Args:
        root: The dataset folder, in one of the layouts of the module docstring.
        workers: Threads reading image headers (sizes); default `spol.data.images.default_workers`.
        progress: Show progress bars (XML parsing, image headers).

    Returns:
        The dataset, format ``"imagenet"``; image ids are paths relative to the images folder
        (``train/<wnid>/<file>``, ``val/<file>``).

    Raises:
        DatasetFormatError: no ``train/`` nor ``val/`` folder, no class list, or a ``val/`` folder
            of unlabelled images with no annotation source.
    """
    root = Path(root)
    images, annotation_roots, meta_folders = _layout(root)
    train = images / "train" if (images / "train").is_dir() else None
    val = images / "val" if (images / "val").is_dir() else None
    if train is None and val is None:
        raise DatasetFormatError(
            f"{root} is not an ImageNet folder: no train/ or val/ in {images}. Expected train/<wnid>/*.JPEG "
            "and val/*.JPEG (or the Kaggle ILSVRC/Data/CLS-LOC tree)"
        )
    problems: list[Problem] = []
    wnids, class_names = _classes(meta_folders, train, problems)
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    pending: list[PendingRecord] = []
    for split, folder in (("train", train), ("val", val)):
        if folder is not None:
            pending += _read_split(
                split, folder, images, annotation_roots, meta_folders, label_of, problems, progress=progress
            )
    records = finish_records(pending, problems, workers=workers, progress=progress)
    logger.info("ImageNet %s: %d images, %d classes, %d problems", root, len(records), len(class_names), len(problems))
    return Dataset(format="imagenet", root=images, class_names=class_names, records=records, problems=problems)


def _read_split(
    split: str,
    folder: Path,
    images: Path,
    annotation_roots: list[Path],
    meta_folders: list[Path],
    label_of: dict[str, int],
    problems: list[Problem],
    *,
    progress: bool,
) -> list[PendingRecord]:
    flat, nested = _image_files(folder)
    if split == "train" and flat:
        problems.append(
            Problem(f"{len(flat)} image files directly in train/ (not in a <wnid>/ folder); skipped", path=str(folder))
        )
        flat = []
    xml_folder, xml_files = _xml_files(images, annotation_roots, split)
    solution_path = _find(meta_folders, SOLUTION_FILES[split])
    solution = _read_solution(solution_path, problems) if solution_path is not None else {}
    if split == "val" and flat and xml_folder is None and solution_path is None:
        raise DatasetFormatError(
            f"{folder} holds unlabelled images and no annotations were found: expected Pascal-VOC XML files "
            f"(val/*.xml, val_annotations/, bbox/val/ or ILSVRC/Annotations/CLS-LOC/val/) or "
            f"{SOLUTION_FILES['val']} in {', '.join(map(str, meta_folders))}"
        )
    logger.debug("%s: XML from %s, solution %s", split, xml_folder, solution_path)

    folder_label: dict[Path, str | None] = {path: None for path in flat}
    for wnid, files in nested.items():
        if wnid not in label_of:
            problems.append(
                Problem(
                    f"class folder {wnid} is not a known wnid; its {len(files)} images skipped", path=str(folder / wnid)
                )
            )
            continue
        folder_label.update({path: wnid for path in files})

    pending = []
    for path, folder_wnid in track(
        folder_label.items(), f"reading {split} annotations", unit="file", enabled=progress
    ):
        annotation = None
        if path.stem in xml_files:
            try:
                annotation = _parse_xml(xml_files[path.stem])
            except ValueError as error:
                problems.append(Problem(f"unreadable annotation: {error}; ignored", path=str(xml_files[path.stem])))
        if annotation is None:
            annotation = solution.get(path.stem)
        record = _pending_record(path, images, folder_wnid, annotation, label_of, split, problems)
        if record is not None:
            pending.append(record)

    image_stems = {path.stem for path in flat} | {path.stem for files in nested.values() for path in files}
    for stem, xml_path in xml_files.items():
        if stem not in image_stems:
            problems.append(Problem(f"annotation for a missing image {stem}; ignored", path=str(xml_path)))
    for stem, annotation in solution.items():
        if stem not in image_stems:
            problems.append(annotation.source.problem(f"annotation for a missing image {stem}; ignored"))
    return pending


def _pending_record(
    path: Path,
    images: Path,
    folder_wnid: str | None,
    annotation: _Annotation | None,
    label_of: dict[str, int],
    split: str,
    problems: list[Problem],
) -> PendingRecord | None:
    """One image's record: its class from its folder or else its annotation, the boxes of that class."""
    image_id = path.relative_to(images).as_posix()
    label_wnid = folder_wnid or (annotation.objects[0][0] if annotation is not None and annotation.objects else None)
    if label_wnid is None:
        problems.append(
            Problem(f"no label for image {image_id}: no usable annotation names its class; skipped", path=str(path))
        )
        return None
    if label_wnid not in label_of:
        where = annotation.source if annotation is not None else Source(path=str(path))
        problems.append(where.problem(f"unknown class {label_wnid} for image {image_id}; skipped"))
        return None
    boxes: list[tuple[Box, Source]] = []
    size = None
    if annotation is not None:
        size = annotation.size
        for name, box in annotation.objects:
            if name == label_wnid:
                boxes.append((box, annotation.source))
            else:
                message = f"box of class {name} in an image of class {label_wnid} ({image_id}); dropped"
                problems.append(annotation.source.problem(message))
    if split == "val" and not boxes:
        problems.append(Problem(f"test image {image_id} has no box", path=str(path)))
    record_split: Split = "train" if split == "train" else "test"
    return PendingRecord(image_id, path, label_of[label_wnid], record_split, boxes, size=size)
