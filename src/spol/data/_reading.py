"""Shared steps of the dataset readers: index-file lines, box checks and the final record pass.

Each reader gathers `PendingRecord`s (what the index files say about an image, with where each
statement was read) and hands them to `finish_records`, which fills sizes from image headers,
checks every box against its image and turns every failure into a `Problem`.

Box policy: readers clip and report (`check_box`, the only box check of the readers); the
evaluation protocol refuses a box that breaks the convention
(`spol.evaluation.check_box_convention`), which a record from a reader never does.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spol.data.images import TURNING_ORIENTATIONS, exif_orientation_problem, read_image_headers
from spol.data.records import Box, DatasetFormatError, ImageRecord, Problem, Split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Where a statement was read: an index file line (``"file:line"``) or a file path."""

    path: str | None = None
    line: str | None = None

    def problem(self, message: str) -> Problem:
        return Problem(message, path=self.path, line=self.line)


@dataclass
class PendingRecord:
    """An image whose index entries were read, before its size and boxes are checked."""

    image_id: str
    path: Path
    label: int
    split: Split
    boxes: list[tuple[Box, Source]] = field(default_factory=list)
    size: tuple[int, int] | None = None
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None


def read_lines(path: Path) -> Iterator[tuple[Source, str]]:
    """Non-blank lines of a UTF-8 text index file, stripped, with their ``file:line`` source.

    Raises:
        DatasetFormatError: the file cannot be read as UTF-8 text.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"cannot read {path} as UTF-8 text: {error}") from error
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line:
            yield Source(line=f"{path}:{number}"), line


def read_csv_rows(path: Path) -> list[list[str]]:
    """Every row of a UTF-8 CSV index file (header included; a byte-order mark is dropped).

    Raises:
        DatasetFormatError: the file cannot be read as UTF-8 CSV.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetFormatError(f"cannot read {path} as a UTF-8 CSV file: {error}") from error


def add_box(
    record: PendingRecord, box: Box, source: Source, seen: dict[tuple[str, Box], Source], problems: list[Problem]
) -> None:
    """Give `record` the `box` read at `source`, unless `seen` holds the same box of the image (then a problem)."""
    key = (record.image_id, box)
    if key in seen:
        problems.append(
            source.problem(
                f"duplicate box {format_box(box)} of image {record.image_id} (first at {seen[key].line}); ignored"
            )
        )
        return
    seen[key] = source
    record.boxes.append((box, source))


def format_box(box: Box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def check_box(box: Box, size: tuple[int, int] | None) -> tuple[Box | None, str | None]:
    """Check a ``(x0, y0, x1, y1)`` box against a ``(width, height)`` image.

    Args:
        box: the box as read.
        size: the image's ``(width, height)``; None when unknown, and then only the image's
            top-left corner (coordinates >= 0) bounds the box.

    Returns:
        ``(box, None)`` for a valid box; ``(clipped, message)`` for a box reaching outside the
        image (clipped to ``[0, width] x [0, height]``, as ``x1 = x + w`` may equal the width);
        ``(None, message)`` for a box to drop: not finite, ``x1 < x0`` or ``y1 < y0``, of zero
        area (``x1 == x0`` or ``y1 == y0``: no pixel inside), or empty once clipped (entirely
        outside the image).
    """
    if not all(math.isfinite(v) for v in box):
        return None, f"box {format_box(box)} has a non-finite coordinate; dropped"
    x0, y0, x1, y1 = box
    if x1 < x0 or y1 < y0:
        return None, f"box {format_box(box)} has x1 < x0 or y1 < y0; dropped"
    if x1 == x0 or y1 == y0:
        # The protocol's +1 pixel areas would score it as a 1-pixel line that no prediction matches.
        return None, f"box {format_box(box)} has zero area (x1 == x0 or y1 == y0); dropped"
    width, height = size if size is not None else (math.inf, math.inf)
    clipped = (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))
    if clipped == tuple(box):
        return box, None
    image = f"{width}x{height} image" if size is not None else "image"
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None, f"box {format_box(box)} lies outside the {image}; dropped"
    return clipped, f"box {format_box(box)} outside {image}, clipped to {format_box(clipped)}"


def parse_box(fields: list[str]) -> Box:
    """Four numbers as a float box; ValueError when one is not a number."""
    if len(fields) != 4:
        raise ValueError(f"expected 4 box coordinates, got {len(fields)}")
    x0, y0, x1, y1 = (float(v) for v in fields)
    return (x0, y0, x1, y1)


def finish_records(
    pending: list[PendingRecord],
    problems: list[Problem],
    *,
    workers: int | None,
    progress: bool,
    probe_sizes: bool = True,
) -> list[ImageRecord]:
    """Fill missing sizes from image headers, check boxes, and build the records.

    A missing or unreadable image is appended to `problems` (with its path) and gives no record;
    a clipped or dropped box is appended with the source it was read from; the images whose header
    holds an EXIF orientation tag that turns them make one problem, logged as a warning too. With
    `probe_sizes` False no image is opened: a record without a size keeps ``size=None``, its boxes
    checked without one. Images whose size the dataset states are not opened either.
    """
    unsized = [p for p in pending if p.size is None] if probe_sizes else []
    headers = read_image_headers([p.path for p in unsized], workers=workers, progress=progress)
    failed: set[int] = set()
    turned: list[tuple[Path, int]] = []
    for item, header in zip(unsized, headers, strict=True):
        if isinstance(header, FileNotFoundError):
            problems.append(Problem(f"image file missing; image {item.image_id} skipped", path=str(item.path)))
            failed.add(id(item))
        elif isinstance(header, Exception):  # an UnreadableImageError, the only other failure
            problems.append(
                Problem(
                    f"unreadable image, image {item.image_id} skipped: {header.__cause__ or header}",
                    path=str(item.path),
                )
            )
            failed.add(id(item))
        else:
            item.size = header.size
            if header.orientation in TURNING_ORIENTATIONS:
                turned.append((item.path, header.orientation))
    if turned:
        problems.append(exif_orientation_problem(turned))
        logger.warning("%s", problems[-1])
    records = []
    for item in pending:
        if id(item) in failed or (probe_sizes and item.size is None):
            continue
        boxes = []
        for box, source in item.boxes:
            checked, message = check_box(box, item.size)
            if message is not None:
                problems.append(source.problem(f"{message} (image {item.image_id})"))
            if checked is not None:
                boxes.append(checked)
        records.append(
            ImageRecord(
                image_id=item.image_id,
                path=item.path,
                label=item.label,
                split=item.split,
                boxes=tuple(boxes),
                size=item.size,
                mask_paths=item.mask_paths,
                ignore_path=item.ignore_path,
            )
        )
    return records
