"""The box extractor: a score map to a binary mask, and a mask to the box of its largest contour.

Boxes follow the WSOL protocol's convention (`spol.scoremaps.protocol_box`): integer
``(x0, y0, x1, y1)`` in the mask's pixels with ``x1 = min(x + w, W - 1)``, ``y1 = min(y + h, H - 1)``
from ``cv2.boundingRect``.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from spol.scoremaps import EMPTY_PROTOCOL_BOX, IntBox, protocol_box, scoremap_to_uint8


def _binary_uint8(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D H x W array, got shape {mask.shape}")
    if mask.size == 0:
        raise ValueError(f"mask must not be empty, got shape {mask.shape}")
    return (mask != 0).astype(np.uint8)


ThresholdRule = Literal["absolute", "protocol"]


def threshold_mask(scoremap: np.ndarray, threshold: float, *, rule: ThresholdRule = "absolute") -> np.ndarray:
    """The H x W bool object mask of a score map in [0, 1].

    Args:
        scoremap: H x W float map in [0, 1].
        threshold: in [0, 1].
        rule: ``"absolute"``: ``scoremap > threshold`` (SPOL's release). ``"protocol"``: the WSOL
            protocol's cut, ``u = uint8(scoremap * 255)``, ``u > int(threshold * max(u))`` — the
            mask whose box MaxBoxAcc scores at `threshold`, so use it with a best threshold
            chosen by `spol.evaluation`.
    """
    if rule == "protocol":
        scaled = scoremap_to_uint8(scoremap)
        return scaled > int(threshold * scaled.max(initial=0))
    if rule == "absolute":
        return np.asarray(scoremap) > threshold
    raise ValueError(f"rule must be 'absolute' or 'protocol', got {rule!r}")


def mask_to_box(mask: np.ndarray) -> IntBox | None:
    """The bounding box of the mask's largest contour, or None when the mask has no object pixel.

    Contours come from ``cv2.findContours`` (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``); the
    largest is the one with the largest ``cv2.contourArea`` (polygon area, not pixel count),
    the first in OpenCV's order on ties, exactly as the WSOL protocol's single-contour mode.

    Args:
        mask: H x W array; non-zero (or True) pixels are object.

    Returns:
        ``(x0, y0, x1, y1)`` ints with ``x1 = min(x + w, W - 1)``, ``y1 = min(y + h, H - 1)``;
        None for an all-zero mask. `mask_to_protocol_box` returns ``(0, 0, 0, 0)`` instead.

    Raises:
        ValueError: `mask` is not a non-empty 2-D array.
    """
    binary = _binary_uint8(mask)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    # max() keeps the first of equal areas, as the protocol's np.argmax does.
    largest = max(contours, key=cv2.contourArea)
    height, width = binary.shape
    x, y, w, h = cv2.boundingRect(largest)
    return protocol_box(int(x), int(y), int(w), int(h), width, height)


def mask_to_protocol_box(mask: np.ndarray) -> IntBox:
    """`mask_to_box`, but ``(0, 0, 0, 0)`` for an empty mask, as the protocol counts it (one box)."""
    box = mask_to_box(mask)
    return EMPTY_PROTOCOL_BOX if box is None else box


__all__ = ["EMPTY_PROTOCOL_BOX", "IntBox", "ThresholdRule", "mask_to_box", "mask_to_protocol_box", "threshold_mask"]
