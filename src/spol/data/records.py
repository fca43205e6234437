"""The in-memory dataset record every reader produces, and the box convention.

Box convention: ``(x0, y0, x1, y1)`` in original-image pixels, floats, as the
wsolevaluation metadata writes them: for CUB's ``x y width height`` the record
holds ``x0 = x, y0 = y, x1 = x + width, y1 = y + height``. Evaluation rescales
these to the protocol resolution (see ``spol.evaluation``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from spol.data._threads import thread_map

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in original-image pixels."""

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset.

    Attributes:
        image_id: Identifier unique within the dataset; a relative path such as
            ``001.Black_footed_Albatross/x.jpg`` (wsolevaluation ids keep their split prefix).
        path: Absolute path of the image file.
        label: Class index in ``[0, num_classes)``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        boxes: Ground-truth boxes, ``(x0, y0, x1, y1)`` in original pixels; may be empty.
        size: ``(width, height)`` in pixels when the dataset states it, else None.
        mask_paths: Instance masks (grayscale images read as 8-bit; foreground where the
            value is > 0.5, as in the protocol), empty when the dataset has none.
        ignore_path: Ignore-region mask (same encoding), or None.
    """

    image_id: str
    path: Path
    label: int
    split: Split
    boxes: tuple[Box, ...] = ()
    size: tuple[int, int] | None = None
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None


@dataclass(frozen=True)
class Problem:
    """A problem found while reading a dataset: what, and where (a path or a file:line)."""

    problem: str
    path: str | None = None
    line: str | None = None

    def to_json(self) -> dict[str, str]:
        """The ``{"problem": ..., "path" | "line": ...}`` object of the summary's JSON."""
        out = {"problem": self.problem}
        if self.path is not None:
            out["path"] = self.path
        if self.line is not None:
            out["line"] = self.line
        return out

    def __str__(self) -> str:
        where = self.line or self.path or ""
        return f"{where}: {self.problem}" if where else self.problem


@dataclass
class Dataset:
    """A dataset read from disk: its records, class names and every problem met on the way.

    Nothing is dropped silently: a record a reader could not build is absent from
    `records` and present, with its reason, in `problems`.
    """

    format: str
    root: Path
    class_names: list[str]
    records: list[ImageRecord]
    problems: list[Problem] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: Split) -> list[ImageRecord]:
        """The records of one split, in reading order."""
        return [r for r in self.records if r.split == name]

    def splits(self) -> dict[str, int]:
        """Number of images per split present in the dataset."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.split] = counts.get(r.split, 0) + 1
        return counts


class DatasetFormatError(ValueError):
    """The folder is not a dataset of the asked format (missing or unreadable index files)."""


def records_digest(records: Sequence[ImageRecord]) -> str:
    """SHA-256 of what the stages read of `records`: ids, files, labels, splits, sizes, boxes and masks, in order."""
    digest = hashlib.sha256()
    for r in records:
        masks = ",".join(str(p) for p in r.mask_paths)
        digest.update(
            f"{r.image_id}|{r.path}|{r.label}|{r.split}|{r.size}|{r.boxes}|{masks}|{r.ignore_path}\n".encode()
        )
    return digest.hexdigest()


def dataset_fingerprint(dataset: Dataset, *, workers: int = 16) -> dict[str, object]:
    """What identifies a dataset on disk: format, root, counts, and digests of its index and of its files.

    ``index_sha256`` is `records_digest` of every record (the index files as read: ids, labels,
    splits, sizes, boxes); ``files_sha256`` digests every image file's byte size and modification
    time (read with `workers` threads), so images replaced under the same names are noticed.
    """
    paths = [record.path for record in dataset.records]

    def stamp(path: Path) -> str:
        try:
            status = path.stat()
        except OSError:
            return "missing"
        return f"{status.st_size}:{status.st_mtime_ns}"

    stamps = thread_map(stamp, paths, workers=max(1, workers))
    files = hashlib.sha256("\n".join(f"{p}|{s}" for p, s in zip(paths, stamps, strict=True)).encode()).hexdigest()
    return {
        "format": dataset.format,
        "root": str(Path(dataset.root).resolve()),
        "images": len(dataset.records),
        "classes": dataset.num_classes,
        "index_sha256": records_digest(dataset.records),
        "files_sha256": files,
    }
