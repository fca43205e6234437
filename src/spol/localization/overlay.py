"""Drawing boxes and mask tints on RGB images (used by `spol localize` and the HTML report).

Images are H x W x 3 uint8 RGB arrays; colours are RGB triples. Boxes follow the protocol
convention ``(x0, y0, x1, y1)`` with inclusive integer corners.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

GREEN: tuple[int, int, int] = (0, 200, 0)
"""Predicted boxes."""
RED: tuple[int, int, int] = (230, 0, 0)
"""Ground-truth boxes."""
MASK_TINT: tuple[int, int, int] = (255, 64, 64)
"""Predicted object mask."""


def check_rgb_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return `image` as a contiguous H x W x 3 uint8 array, or raise ValueError naming `name`."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be an H x W x 3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
    return np.ascontiguousarray(image)


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    color: tuple[int, int, int],
    *,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of `image` with each box outlined by ``cv2.rectangle``.

    Args:
        image: H x W x 3 uint8 RGB.
        boxes: ``(x0, y0, x1, y1)`` in `image`'s pixels (floats are truncated to ints).
        color: RGB.
        thickness: line width in pixels; default scales with the image (2 px at 224, at least 1).
    """
    out = check_rgb_image(image).copy()
    if thickness is None:
        thickness = max(1, round(max(out.shape[:2]) / 112))
    for box in boxes:
        x0, y0, x1, y1 = (int(v) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thickness)
    return out


def tint_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = MASK_TINT,
    *,
    alpha: float = 0.45,
) -> np.ndarray:
    """A copy of `image` blended with `color` (weight `alpha`) where `mask` is non-zero.

    Args:
        image: H x W x 3 uint8 RGB.
        mask: H x W, same size as `image`; non-zero pixels are tinted.
        color: RGB tint.
        alpha: tint weight in [0, 1].
    """
    out = check_rgb_image(image).copy()
    mask = np.asarray(mask) != 0
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image size {out.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    tint = np.asarray(color, dtype=np.float32)
    out[mask] = np.clip((1 - alpha) * out[mask].astype(np.float32) + alpha * tint, 0, 255).astype(np.uint8)
    return out


def localization_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    box: Sequence[float] | None,
    *,
    gt_boxes: Sequence[Sequence[float]] = (),
) -> np.ndarray:
    """The image with the mask tinted, the predicted box in green and ground-truth boxes in red."""
    out = tint_mask(image, mask)
    if gt_boxes:
        out = draw_boxes(out, gt_boxes, RED)
    if box is not None:
        out = draw_boxes(out, [box], GREEN)
    return out


__all__ = ["GREEN", "MASK_TINT", "RED", "check_rgb_image", "draw_boxes", "localization_overlay", "tint_mask"]
