"""What the localizer takes as images: paths, PIL images, NumPy arrays and torch tensors, as RGB.

Accepted, each turned into one ``H x W x 3`` uint8 RGB PIL image (as a file of the same pixels would be):

- a path (``str`` or ``os.PathLike``): decoded by `spol.data.load_image_rgb` with the EXIF
  orientation applied (the image as displayed), every colour mode included;
- a PIL image of any mode (16-bit scaled to 8 bits, transparency composited on white, as for files);
- a NumPy array ``H x W`` (gray) or ``H x W x C`` with ``C`` = 1 (gray), 3 (RGB) or 4 (RGBA,
  composited on white), channels last, of dtype uint8 in [0, 255], uint16 in [0, 65535] or float in [0, 1];
- a torch tensor ``C x H x W`` or ``B x C x H x W`` (``B`` images), ``C`` = 1, 3 or 4, channels first
  (torchvision's layout), of dtype uint8 in [0, 255] or float in [0, 1], on any device.

Floats are rounded to 8 bits (``round(v * 255)``), uint16 by ``round(v / 257)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

from spol.data import load_image_rgb, pil_to_rgb

ImageInput = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
"""One image: a path, a PIL image, an H x W or H x W x 1/3/4 array, or a C x H x W tensor (see the module)."""

ACCEPTED = (
    "a path, a PIL image, a NumPy array H x W or H x W x 1/3/4 (uint8 0-255, uint16 0-65535 or float 0-1), "
    "or a torch tensor C x H x W or B x C x H x W with C = 1, 3 or 4 (uint8 0-255 or float 0-1)"
)
"""What the localizer accepts, in words (for error messages)."""


def is_single_image(images: Any) -> bool:
    """Whether `images` is one image (a path, PIL image, array or 3-D tensor), not a list of them."""
    if isinstance(images, torch.Tensor):
        return images.ndim != 4
    return isinstance(images, str | os.PathLike | Image.Image | np.ndarray)


def iter_images(images: Iterable[Any]) -> Iterator[tuple[Any, str | None]]:
    """Each image of `images` (a B x C x H x W tensor, alone or in a list, gives its B images) with its source.

    The source is the path as given for a path, else None.
    """
    if isinstance(images, torch.Tensor):
        images = [images]
    if not isinstance(images, Iterable):
        raise TypeError(f"expected one image or a list of them, got {type(images).__name__}; an image is {ACCEPTED}")
    for image in images:
        if isinstance(image, torch.Tensor) and image.ndim == 4:
            yield from ((single, None) for single in image.unbind(0))
        else:
            yield image, str(image) if isinstance(image, str | os.PathLike) else None


def to_rgb_image(image: Any, index: int) -> Image.Image:
    """`image` as an RGB PIL image; `index` (its place in the input) names it in errors.

    Raises:
        TypeError: `image` is none of the accepted kinds (the message lists them).
        ValueError: an array or tensor of another layout, dtype or value range, or empty.
        FileNotFoundError, spol.data.UnreadableImageError: a path that is missing or not an image.
    """
    if isinstance(image, str | os.PathLike):
        return load_image_rgb(image, exif_orientation=True)
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, torch.Tensor):
        return _array_to_rgb(_tensor_to_hwc(image, index), index)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, index)
    raise TypeError(f"image {index}: got {type(image).__name__}; expected {ACCEPTED}")


def _tensor_to_hwc(tensor: torch.Tensor, index: int) -> np.ndarray:
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"image {index}: tensors must be C x H x W or B x C x H x W with C = 1, 3 or 4 (channels first), "
            f"got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype != torch.uint8 and not tensor.is_floating_point():
        raise ValueError(f"image {index}: tensors must be uint8 in [0, 255] or float in [0, 1], got {tensor.dtype}")
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy().transpose(1, 2, 0)


def _array_to_rgb(array: np.ndarray, index: int) -> Image.Image:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        hint = " (channels last; for C x H x W use .transpose(1, 2, 0))" if array.ndim == 3 else ""
        raise ValueError(
            f"image {index}: arrays must be H x W or H x W x C with C = 1, 3 or 4{hint}, got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        values = array
    elif array.dtype == np.uint16:
        values = np.rint(array / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(
                f"image {index}: float images must hold finite values in [0, 1], got [{np.nanmin(array):g}, "
                f"{np.nanmax(array):g}]; divide 0-255 values by 255, or pass them as uint8"
            )
        values = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise ValueError(
            f"image {index}: arrays must be uint8 in [0, 255], uint16 in [0, 65535] or float in [0, 1], "
            f"got {array.dtype}"
        )
    # Pillow reads H x W as L, H x W x 3 as RGB, H x W x 4 as RGBA; RGBA is composited as for files.
    return pil_to_rgb(Image.fromarray(np.ascontiguousarray(values[:, :, 0] if values.shape[2] == 1 else values)))


__all__ = ["ACCEPTED", "ImageInput", "is_single_image", "iter_images", "to_rgb_image"]
