"""Pictures for the report: heat maps, pseudo masks and boxes over images, and PNG encoding.

Images are H x W x 3 uint8 RGB; maps of another size are resized to the image first (bilinear
for score maps, nearest for pseudo masks). Predicted boxes are drawn in green, ground-truth
boxes in red (`spol.localization.overlay`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from spol.localization.overlay import GREEN, RED, check_rgb_image, draw_boxes
from spol.stages.pseudo_masks import IGNORE_INDEX

PSEUDO_FOREGROUND: tuple[int, int, int] = (255, 64, 64)
PSEUDO_BACKGROUND: tuple[int, int, int] = (40, 40, 160)
PSEUDO_IGNORE: tuple[int, int, int] = (160, 160, 160)


def _resize_to(array: np.ndarray, image: np.ndarray, interpolation: int) -> np.ndarray:
    height, width = image.shape[:2]
    if array.shape[:2] == (height, width):
        return array
    return cv2.resize(array, (width, height), interpolation=interpolation)


def heatmap_overlay(image: np.ndarray, scoremap: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """`image` blended with the JET colour map of `scoremap` (``cv2.applyColorMap``).

    Args:
        image: H x W x 3 uint8 RGB.
        scoremap: h x w float map in [0, 1] (values outside are clipped; NaN is an error).
        alpha: weight of the heat map in [0, 1].
    """
    image = check_rgb_image(image)
    scoremap = np.asarray(scoremap, dtype=np.float32)
    if scoremap.ndim != 2:
        raise ValueError(f"scoremap must be 2-D, got shape {scoremap.shape}")
    if np.isnan(scoremap).any():
        raise ValueError("scoremap contains NaN")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    scoremap = _resize_to(np.clip(scoremap, 0.0, 1.0), image, cv2.INTER_LINEAR)
    heat = cv2.cvtColor(cv2.applyColorMap((scoremap * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image, 1.0 - alpha, heat, alpha, 0.0)


def pseudo_mask_overlay(image: np.ndarray, pseudo_mask: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """`image` tinted by a pseudo mask: 1 foreground (red), 0 background (blue), 255 ignored (grey).

    Args:
        image: H x W x 3 uint8 RGB.
        pseudo_mask: h x w uint8 with values in {0, 1, 255} (`spol.stages.pseudo_masks` encoding).
        alpha: tint weight in [0, 1].
    """
    image = check_rgb_image(image)
    pseudo_mask = np.asarray(pseudo_mask)
    if pseudo_mask.ndim != 2:
        raise ValueError(f"pseudo_mask must be 2-D, got shape {pseudo_mask.shape}")
    unexpected = np.setdiff1d(np.unique(pseudo_mask), [0, 1, IGNORE_INDEX])
    if unexpected.size:
        raise ValueError(f"pseudo_mask values must be 0, 1 or 255, found {unexpected[:5].tolist()}")
    pseudo_mask = _resize_to(pseudo_mask.astype(np.uint8), image, cv2.INTER_NEAREST)
    colors = np.zeros_like(image)
    colors[pseudo_mask == 1] = PSEUDO_FOREGROUND
    colors[pseudo_mask == 0] = PSEUDO_BACKGROUND
    colors[pseudo_mask == IGNORE_INDEX] = PSEUDO_IGNORE
    return cv2.addWeighted(image, 1.0 - alpha, colors, alpha, 0.0)


def with_boxes(
    image: np.ndarray,
    *,
    predicted: Sequence[float] | None = None,
    ground_truth: Sequence[Sequence[float]] = (),
) -> np.ndarray:
    """A copy of `image` with ground-truth boxes in red and the predicted box in green (drawn last)."""
    out = draw_boxes(image, ground_truth, RED)
    if predicted is not None:
        out = draw_boxes(out, [predicted], GREEN)
    return out


def to_png_base64(image: np.ndarray) -> str:
    """PNG bytes of an H x W x 3 uint8 RGB (or H x W uint8) image, base64-encoded (ASCII)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W (x 3) uint8 image, got shape {image.shape} dtype {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = ["heatmap_overlay", "pseudo_mask_overlay", "to_png_base64", "with_boxes"]
