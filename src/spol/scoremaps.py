"""Score-map and box conventions shared by localization and evaluation.

A score map is a 2-D float array with values in [0, 1] (1 = object). The WSOL
protocol evaluates maps at 224 x 224, the image resized (not cropped) to that size.

A protocol box (as clovaai/wsolevaluation computes it) is integer ``(x0, y0, x1, y1)`` in the
mask's pixels from ``x, y, w, h = cv2.boundingRect(contour)``: ``x0 = x``, ``y0 = y``,
``x1 = min(x + w, W - 1)``, ``y1 = min(y + h, H - 1)``. ``x + w`` is one past the last object
pixel; only the clip brings it back inside the mask.
"""

from __future__ import annotations

import numpy as np

PROTOCOL_SIZE = 224
"""Side of the square resolution at which the WSOL protocol evaluates maps."""

IntBox = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` integer pixels, protocol convention (``x1 = min(x + w, W - 1)``)."""

IGNORE_INDEX = 255
"""A mask pixel that is neither object nor background: the segmentation loss ignores it in a pseudo
mask (the conflict region), PxAP leaves it out of a ground-truth mask (the protocol's ignore mask)."""

EMPTY_PROTOCOL_BOX: IntBox = (0, 0, 0, 0)
"""What the protocol counts for a mask without any contour (a one-pixel box at the origin)."""


def protocol_box(x: int, y: int, w: int, h: int, width: int, height: int) -> IntBox:
    """The protocol box of a contour with ``cv2.boundingRect`` ``(x, y, w, h)`` in a ``width x height`` mask.

    Plain integer arithmetic, so that the compiled level sweep (`spol.evaluation.level_components`)
    uses this same function.
    """
    return x, y, min(x + w, width - 1), min(y + h, height - 1)


class ScoreMapError(ValueError):
    """A score map that breaks the convention (not 2-D, NaN, values outside [0, 1])."""


def check_scoremap(scoremap: np.ndarray, name: str = "score map") -> None:
    """Raise ScoreMapError naming `name` when `scoremap` is not a valid score map."""
    if scoremap.ndim != 2:
        raise ScoreMapError(f"{name}: expected a 2-D array, got shape {scoremap.shape}")
    if not np.issubdtype(scoremap.dtype, np.floating):
        raise ScoreMapError(f"{name}: expected a float array, got dtype {scoremap.dtype}")
    if np.isnan(scoremap).any():
        raise ScoreMapError(f"{name}: contains NaN; a score map holds values in [0, 1]")
    if scoremap.size and (scoremap.min() < 0 or scoremap.max() > 1):
        raise ScoreMapError(f"{name}: values must lie in [0, 1], got [{scoremap.min():.4g}, {scoremap.max():.4g}]")


def scoremap_to_uint8(scoremap: np.ndarray) -> np.ndarray:
    """``uint8(s * 255)`` computed in float64 (truncation), the protocol's 8-bit map."""
    return (np.asarray(scoremap, dtype=np.float64) * 255).astype(np.uint8)
