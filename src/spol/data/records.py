"""The in-memory dataset record every reader produces, and the box convention.

Box convention: ``(x0, y0, x1, y1)`` in original-image pixels, floats, as the
wsolevaluation metadata writes them: for CUB's ``x y width height`` the record
holds ``x0 = x, y0 = y, x1 = x + width, y1 = y + height``. Evaluation rescales
these to the protocol resolution (see ``spol.evaluation``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal

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


def relative_name(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """`path` as a dataset names it wherever the dataset lies: relative to `root` (POSIX), absolute when outside.

    Both are made absolute and normalised first (``..`` resolved as text, links kept), so ``D``,
    ``./D``, ``../x/D`` and ``/abs/x/D`` name a file of the dataset alike.
    """
    absolute, base = os.path.abspath(path), os.path.abspath(root)
    try:
        relative = os.path.relpath(absolute, base)
    except ValueError:  # another drive (Windows)
        return PurePath(absolute).as_posix()
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return PurePath(absolute).as_posix()
    return PurePath(relative).as_posix()


def records_digest(records: Sequence[ImageRecord], root: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 of what the stages read of `records`: ids, files, labels, splits, sizes, boxes and masks, in order.

    With `root` (the dataset's folder) every file is named by `relative_name`, so the digest does not
    depend on how the folder is spelled or where it lies; without it, by the path as the record holds it.
    """

    def name(path: Path | None) -> str:
        return str(path) if path is None or root is None else relative_name(path, root)

    digest = hashlib.sha256()
    for r in records:
        masks = ",".join(name(p) for p in r.mask_paths)
        digest.update(
            f"{r.image_id}|{name(r.path)}|{r.label}|{r.split}|{r.size}|{r.boxes}|{masks}|{name(r.ignore_path)}\n".encode()
        )
    return digest.hexdigest()
