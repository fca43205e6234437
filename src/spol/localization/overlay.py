"""Drawing boxes and mask tints on RGB images (used by `spol localize` and the HTML report).

Images are H x W x 3 uint8 RGB arrays; colours are RGB triples. Boxes follow the protocol
convention ``(x0, y0, x1, y1)`` with inclusive integer corners.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def draw_mask_outline(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = MASK_TINT) -> np.ndarray:
    """A copy of `image` (H x W x 3 uint8 RGB) with the outer contours of `mask` (H x W, non-zero = object) drawn."""
    out = check_rgb_image(image).copy()
    mask = np.asarray(mask) != 0
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image size {out.shape[:2]}")
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, max(1, round(max(out.shape[:2]) / 224)))
    return out


def draw_label(
    image: np.ndarray, text: str, corner: tuple[int, int], color: tuple[int, int, int] = GREEN
) -> np.ndarray:
    """A copy of `image` (H x W x 3 uint8 RGB) with `text` in white on a `color` band at `corner` ``(x, y)``.

    The band sits above the corner when it fits there, else below it, and is moved left to stay in the image.
    The font (Pillow's default) scales with the image: 12 px at 224, at least 10.
    """
    canvas = Image.fromarray(check_rgb_image(image))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, round(max(canvas.size) / 18)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left + 4, bottom - top + 4
    x = max(0, min(corner[0], canvas.width - width))
    y = corner[1] - height if corner[1] - height >= 0 else min(corner[1], max(0, canvas.height - height))
    draw.rectangle((x, y, x + width - 1, y + height - 1), fill=color)
    draw.text((x + 2 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def localization_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    box: Sequence[float] | None,
    *,
    gt_boxes: Sequence[Sequence[float]] = (),
    label: str | None = None,
) -> np.ndarray:
    """The image with the mask tinted and outlined, the predicted box in green and ground-truth boxes in red.

    `label` (e.g. ``"cat 0.93"``) is written on a green band at the box's top-left corner, or at the
    image's without a box.
    """
    out = draw_mask_outline(tint_mask(image, mask), mask)
    if gt_boxes:
        out = draw_boxes(out, gt_boxes, RED)
    if box is not None:
        out = draw_boxes(out, [box], GREEN)
    if label is not None:
        corner = (0, 0) if box is None else (int(box[0]), int(box[1]))
        out = draw_label(out, label, corner)
    return out


__all__ = [
    "GREEN",
    "MASK_TINT",
    "RED",
    "check_rgb_image",
    "draw_boxes",
    "draw_label",
    "draw_mask_outline",
    "localization_overlay",
    "tint_mask",
]
