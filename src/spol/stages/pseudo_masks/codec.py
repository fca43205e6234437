"""How a pseudo mask ``(P, G)`` is stored: one 8-bit RGB PNG per image, P in red and G in green."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from spol.fileio import image_id_path, save_image_atomic
from spol.scoremaps import check_scoremap
from spol.stages.pseudo_masks.targets import pseudo_mask_from_cam

PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNGs: encoding at Pillow's default (6) takes about 30 ms for a 500 x 375 mask,
level 1 about 9 ms for files 1.5x larger; the CPU, not the disk, limits pseudo-mask generation."""


def pseudo_mask_path(out_dir: str | os.PathLike[str], image_id: str) -> Path:
    """Where the pseudo mask of `image_id` lives.

    ``out_dir / (image_id + ".png")``, or under ``out_dir/_outside/`` for ids that would leave it
    (`spol.fileio.image_id_path`).

    Raises:
        ValueError: `image_id` is empty.
    """
    return image_id_path(out_dir, image_id, ".png")


def write_pseudo_mask(path: str | os.PathLike[str], p: np.ndarray, g: np.ndarray) -> None:
    """Write ``(P, G)`` atomically as an 8-bit RGB PNG.

    Encoding: red = ``round(255 * P)``, green = ``round(255 * G)``, blue = 0; decode with
    ``value / 255`` (`read_pseudo_mask`), so a round trip is exact to within 0.5 / 255. The
    release stores the same two channels but truncates instead of rounding and, through
    ``cv2.imwrite`` of ``(P, G, 0)``, puts P in the blue channel of the file.

    Args:
        path: output PNG; its folder is created.
        p: P, ``H x W`` float in [0, 1].
        g: G, ``H x W`` float in [0, 1].

    Raises:
        ValueError: shapes differ, maps are not 2-D floats, or values are NaN or outside [0, 1].
    """
    channels = []
    for name, values in (("P", p), ("G", g)):
        values = np.asarray(values)
        check_scoremap(values, f"{name} to be written to {path}")
        channels.append(np.rint(values * 255).astype(np.uint8))
    if channels[0].shape != channels[1].shape:
        raise ValueError(f"P and G must have the same shape, got {channels[0].shape} and {channels[1].shape}")
    rgb = np.stack([channels[0], channels[1], np.zeros_like(channels[0])], axis=-1)
    save_image_atomic(path, Image.fromarray(rgb), "PNG", compress_level=PNG_COMPRESS_LEVEL)


def read_pseudo_mask(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(P, G)`` written by `write_pseudo_mask`.

    Returns:
        P and G, ``H x W`` float32 in [0, 1] at the image's original size.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a readable 8-bit RGB PNG; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo mask {path} does not exist; generate it with `spol pseudo-masks`")
    try:
        with Image.open(path) as image:
            mode = image.mode
            rgb = np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"pseudo mask {path} is unreadable ({error}); regenerate it with `spol pseudo-masks --force`"
        ) from error
    if mode != "RGB" or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"pseudo mask {path} is not an 8-bit RGB PNG (mode {mode}, shape {rgb.shape}); "
            "regenerate it with `spol pseudo-masks --force`"
        )
    return rgb[..., 0].astype(np.float32) / 255, rgb[..., 1].astype(np.float32) / 255


def write_pseudo_mask_from_cam(cam: np.ndarray, size: tuple[int, int], resize: int, path: Path) -> bool:
    """`pseudo_mask_from_cam` then `write_pseudo_mask` (the CPU work per image); True when the CAM was all zero."""
    p, g = pseudo_mask_from_cam(cam, size, resize=resize)
    write_pseudo_mask(path, p, g)
    return bool(cam.max() <= 0)


__all__ = ["pseudo_mask_path", "read_pseudo_mask", "write_pseudo_mask", "write_pseudo_mask_from_cam"]
