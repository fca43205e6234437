"""The dataset formats and their readers: the one place that maps a format name to its reader."""

from __future__ import annotations

import os
import typing
from typing import Literal, Protocol

from spol.data.records import Dataset

DatasetFormatName = Literal["cub", "wsol", "imagenet", "csv", "imagefolder"]
"""A dataset format `read_dataset` reads."""

FORMATS: tuple[str, ...] = typing.get_args(DatasetFormatName)
"""Dataset formats `read_dataset` reads."""


class Reader(Protocol):
    """A dataset reader: ``reader(root, workers=..., progress=...)`` returns the dataset at `root`."""

    def __call__(
        self, root: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True
    ) -> Dataset: ...


def _readers() -> dict[str, Reader]:
    """The reader of each format; the reader modules are imported here, on first use, not with this module."""
    from spol.data.csv_folder import read_csv_folder
    from spol.data.cub import read_cub
    from spol.data.image_folder import read_image_folder
    from spol.data.imagenet import read_imagenet
    from spol.data.wsol import read_wsol

    return {
        "cub": read_cub,
        "wsol": read_wsol,
        "imagenet": read_imagenet,
        "csv": read_csv_folder,
        "imagefolder": read_image_folder,
    }


def read_dataset(
    root: str | os.PathLike[str], format: str, *, workers: int | None = None, progress: bool = True
) -> Dataset:
    """Read the dataset at `root` in `format`.

    Args:
        root: The dataset folder (``"csv"`` also takes the CSV file's path).
        format: ``"cub"`` (CUB-200-2011 as distributed, `spol.data.read_cub`), ``"wsol"``
            (wsolevaluation metadata, `spol.data.wsol.read_wsol`), ``"imagenet"`` (ILSVRC folders,
            `spol.data.read_imagenet`), ``"csv"`` (images plus ``labels.csv``, `spol.data.read_csv_folder`)
            or ``"imagefolder"`` (``root/<class>/<image>`` plus an optional ``boxes.csv``,
            `spol.data.read_image_folder`).
        workers: Threads reading image headers.
        progress: Show progress bars.

    Raises:
        ValueError: `format` is not one of `FORMATS`.
        DatasetFormatError: `root` is not a dataset of that format (the message names what is missing).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    return _readers()[format](root, workers=workers, progress=progress)
