"""Reading image files: RGB decoding of every colour mode, cheap header sizes, parallel checks.

Dataset images are read as stored, like the reference protocol (``Image.open(p).convert("RGB")``) and
torchvision (``decode_image(..., apply_exif_orientation=False)``): the boxes of CUB, ImageNet and the
wsolevaluation metadata were drawn on the stored pixels, so applying an EXIF orientation tag would
misplace them. Viewers and most labelling tools show a tagged image turned, though, so boxes drawn on
one are in the displayed frame: the readers count the tagged images they open and report them as one
problem (`exif_orientation_problem`). New images given to ``spol localize`` are seen as displayed:
``exif_orientation=True`` applies the tag (``PIL.ImageOps.exif_transpose``) and sizes are then
``(width, height)`` after rotation.

Colour modes (``load_image_rgb``):

- ``RGB``, ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``RGBX`` ... : PIL's own conversion to RGB (as the
  reference protocol's ``Image.open(path).convert("RGB")``; CMYK uses PIL's plain formula, no ICC profile).
- Transparency (``RGBA``, ``LA``, ``PA``, ``P`` or ``L``/``RGB`` with a ``transparency`` entry): composited
  on **white** (`ALPHA_BACKGROUND`). Transparent pixels are background in cut-out images, and viewers
  and browsers show them on a white page; dropping the alpha channel instead would expose whatever
  colour the encoder left under it (often black).
- 16-bit (``I;16``, ``I;16B``, ``I;16L``, and ``I``, which PIL uses for some 16-bit PNGs): values in
  ``[0, 65535]`` scaled to ``[0, 255]`` by ``round(v / 257)`` (PIL's own conversion would clip at 255
  and turn most 16-bit images white). ``I`` values outside ``[0, 65535]`` are clipped first.
- ``F`` (32-bit float): taken as ``[0, 255]`` values, clipped and rounded.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin

from spol.data._threads import thread_map
from spol.data.records import Problem

logger = logging.getLogger(__name__)

SIZE_MISMATCH = "image size differs"
"""Start of the `verify_images` problem for an image that decodes at another size than stated."""

ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)
"""Colour that transparent pixels are composited on."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Orientations 5-8 swap width and height (transpose, rotations by 90 degrees).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
TURNING_ORIENTATIONS = frozenset(range(2, 9))
"""EXIF orientations that display an image other than as stored (mirrored, turned or both)."""
# Decoding errors PIL raises for broken files (truncated data, bad headers, bombs).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


class UnreadableImageError(ValueError):
    """An image file exists but cannot be decoded; the message names the path and the reason."""


def default_workers() -> int:
    """Threads for image I/O: reading is mostly waiting on the disk, so a few per core."""
    return min(32, 4 * (os.cpu_count() or 1))


def load_image_rgb(
    path: str | os.PathLike[str], *, exif_orientation: bool = False, min_size: int | None = None
) -> Image.Image:
    """Decode `path` as an RGB image: as stored, or as displayed with `exif_orientation`.

    Args:
        path: the image file.
        exif_orientation: apply the EXIF orientation tag (images as displayed).
        min_size: the caller resizes the image to ``min_size x min_size`` next: a JPEG is then
            decoded at the smallest 1/2, 1/4 or 1/8 scale whose sides are still at least
            `min_size` (libjpeg's DCT scaling, Pillow's ``draft``), several times faster for large
            photos; None decodes every pixel. Other formats are always decoded whole.

    Returns:
        A PIL image of mode ``"RGB"`` (``H x W x 3`` uint8 in ``[0, 255]``); see the module
        docstring for how each colour mode is converted.

    Raises:
        FileNotFoundError: `path` does not exist.
        UnreadableImageError: the file is not an image PIL can decode (truncated, corrupt, an
            unsupported mode); the message names the path.
    """
    return decode_image(path, exif_orientation=exif_orientation, min_size=min_size)[0]


def decode_image(
    path: str | os.PathLike[str], *, exif_orientation: bool = False, min_size: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """`load_image_rgb` and the ``(width, height)`` of the full image.

    The size is as stored (as displayed with `exif_orientation`), which a reduced decode (`min_size`) does not show.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            full_size = image.size
            if min_size is not None and image.format == "JPEG":
                image.draft(image.mode, (min_size, min_size))
            image.load()
            if exif_orientation:
                transposed = ImageOps.exif_transpose(image)  # a plain in-memory copy, detached from the file
                if transposed.size != image.size:
                    full_size = full_size[::-1]
                image = transposed
            return pil_to_rgb(image), full_size
    except FileNotFoundError:
        raise
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(f"cannot decode image {path}: {error}") from error


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """`image` in mode ``"RGB"``, each colour mode converted as the module docstring says (the image itself if RGB)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        gray = np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "F":
        gray = np.rint(np.clip(np.asarray(image, dtype=np.float64), 0, 255)).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


class ImageHeader(NamedTuple):
    """What an image file's header says: its ``(width, height)`` as stored and its EXIF orientation (1: none)."""

    size: tuple[int, int]
    orientation: int


def read_image_header(path: str | os.PathLike[str]) -> ImageHeader:
    """The size as stored and the EXIF orientation tag of an image, from its header only.

    Opening with PIL reads the header, not the pixels, so this is cheap. For PNG files the EXIF
    block is looked up only where PIL finds it before the pixel data (an ``eXIf`` chunk placed after
    the pixels, which is rare, is not seen without decoding the whole image).

    Raises:
        FileNotFoundError: `path` does not exist.
        UnreadableImageError: the header is not one of an image PIL knows.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if isinstance(image, PngImagePlugin.PngImageFile) and "exif" not in image.info:
                exif = Image.Image.getexif(image)  # the PNG override would decode the pixels
            else:
                exif = image.getexif()
            orientation = exif.get(ExifTags.Base.Orientation, 1)
    except FileNotFoundError:
        raise
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(f"cannot read the header of image {path}: {error}") from error
    return ImageHeader((width, height), orientation if isinstance(orientation, int) else 1)


def image_size(path: str | os.PathLike[str], *, exif_orientation: bool = False) -> tuple[int, int]:
    """``(width, height)`` of the image as stored (as displayed with `exif_orientation`), from the header only.

    Raises:
        FileNotFoundError: `path` does not exist.
        UnreadableImageError: the header is not one of an image PIL knows.
    """
    (width, height), orientation = read_image_header(path)
    if exif_orientation and orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def read_image_headers(
    paths: Sequence[Path], *, workers: int | None = None, progress: bool = True
) -> list[ImageHeader | Exception]:
    """`read_image_header` of each path, read by `workers` threads; a failure is returned in its place.

    Returns:
        One entry per path, in order: its `ImageHeader`, or the ``FileNotFoundError`` /
        ``UnreadableImageError`` raised for it.
    """

    def one(path: Path) -> ImageHeader | Exception:
        try:
            return read_image_header(path)
        except (FileNotFoundError, UnreadableImageError) as error:
            return error

    workers = default_workers() if workers is None else workers
    return thread_map(one, paths, workers=workers, progress=progress, desc="reading image headers")


def exif_orientation_problem(tagged: Sequence[tuple[Path, int]]) -> Problem:
    """The one problem that reports dataset images whose EXIF tag turns them (`TURNING_ORIENTATIONS`).

    Args:
        tagged: ``(path, orientation)`` of each such image, in reading order (not empty).
    """
    path, orientation = tagged[0]
    return Problem(
        f"{len(tagged)} image(s) have an EXIF orientation tag that viewers apply (e.g. orientation {orientation} "
        "here); spol reads images as stored, the frame CUB and ImageNet boxes are drawn in. If your boxes were "
        "drawn on the images as displayed, rewrite them upright first (e.g. exiftran -ai or mogrify -auto-orient)",
        path=str(path),
    )


def verify_images(
    paths: Sequence[Path],
    workers: int | None = None,
    *,
    sizes: Sequence[tuple[int, int] | None] | None = None,
    progress: bool = True,
) -> list[Problem]:
    """Decode every image fully (`load_image_rgb`) in parallel and return the problems found.

    Args:
        paths: Image files.
        workers: Decoding threads (PIL releases the GIL while decoding); default `default_workers`.
        sizes: Optional expected ``(width, height)`` per path (as displayed); a decoded image of
            another size is a problem too.
        progress: Show a tqdm progress bar on stderr.

    Returns:
        One `Problem` (with the image path) per missing, undecodable or wrongly sized image, in
        the order of `paths`.
    """
    if sizes is not None and len(sizes) != len(paths):
        raise ValueError(f"sizes has {len(sizes)} entries for {len(paths)} paths; give one per path or None")

    def one(index: int) -> Problem | None:
        path = paths[index]
        try:
            image = load_image_rgb(path)
        except FileNotFoundError:
            return Problem("image file missing", path=str(path))
        except UnreadableImageError as error:
            return Problem(f"unreadable image: {error.__cause__ or error}", path=str(path))
        expected = sizes[index] if sizes is not None else None
        if expected is not None and tuple(image.size) != tuple(expected):
            width, height = image.size
            return Problem(
                f"{SIZE_MISMATCH}: decoded {width}x{height}, the dataset states {expected[0]}x{expected[1]}",
                path=str(path),
            )
        return None

    workers = default_workers() if workers is None else workers
    results = thread_map(one, range(len(paths)), workers=workers, progress=progress, desc="decoding images")
    return [problem for problem in results if problem is not None]
