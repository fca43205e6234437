"""SPOL's segmentation targets: the CAM's normalised map P, its Gaussian prior G, and the double threshold.

For every training image the CAM of its ground-truth class is divided by its maximum (+1e-6) and
resized bilinearly to ``resize x resize``: ``P``. The Gaussian prior ``G`` is fitted to P
(`spol.stages.pseudo_masks.gaussian_prior`). Both are resized to the image's original size
(`pseudo_mask_from_cam`). When the segmentation network is trained, `double_threshold` turns
``(P, G)`` into its target.
"""

from __future__ import annotations

import cv2
import numpy as np

from spol.config import PseudoMaskConfig
from spol.scoremaps import IGNORE_INDEX
from spol.stages.pseudo_masks.gaussian_prior import gaussian_prior, normalize_cam

FOREGROUND_THRESHOLD: float = PseudoMaskConfig.model_fields["foreground"].default
"""Foreground where ``P > 0.25 or G > 0.25`` (the release's value; 0.25 itself is not foreground)."""

BACKGROUND_THRESHOLD: float = PseudoMaskConfig.model_fields["background"].default
"""Background where ``P < 0.01`` and not foreground (0.01 itself is not background)."""

RESIZE: int = PseudoMaskConfig.model_fields["resize"].default
"""Input size of the CAM network and resolution of P and G before the resize to original size."""


def double_threshold(
    p: np.ndarray,
    g: np.ndarray,
    *,
    foreground: float = FOREGROUND_THRESHOLD,
    background: float = BACKGROUND_THRESHOLD,
) -> np.ndarray:
    """The segmentation target of a ``(P, G)`` pair.

    Foreground (1) where ``P > foreground or G > foreground``; background (0) where
    ``P < background`` and not foreground; `IGNORE_INDEX` (255, the conflict region) elsewhere.
    Comparisons are strict: a value equal to a threshold is neither foreground nor background.

    Args:
        p: P, float array in [0, 1] (any shape, usually ``H x W``).
        g: G, float array of the same shape.
        foreground: foreground threshold on P and G.
        background: background threshold on P; must be below `foreground`.

    Returns:
        uint8 array of the same shape with values in {0, 1, 255}.

    Raises:
        ValueError: shapes differ, maps are not float or hold NaN, or ``background >= foreground``.
    """
    p, g = np.asarray(p), np.asarray(g)
    if p.shape != g.shape:
        raise ValueError(f"P and G must have the same shape, got {p.shape} and {g.shape}")
    for name, values in (("P", p), ("G", g)):
        if not np.issubdtype(values.dtype, np.floating):
            raise ValueError(
                f"{name} must be a float map in [0, 1], got dtype {values.dtype}; divide 8-bit values by 255"
            )
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN values")
    if not background < foreground:
        raise ValueError(f"background ({background}) must be below foreground ({foreground})")
    target = np.full(p.shape, IGNORE_INDEX, dtype=np.uint8)
    is_foreground = (p > foreground) | (g > foreground)
    target[(p < background) & ~is_foreground] = 0
    target[is_foreground] = 1
    return target


def pseudo_mask_from_cam(
    cam: np.ndarray, original_size: tuple[int, int], *, resize: int = RESIZE
) -> tuple[np.ndarray, np.ndarray]:
    """``(P, G)`` of one image from the CAM of its ground-truth class.

    ``P = resize_bilinear(cam / (max(cam) + 1e-6), resize x resize)``, ``G`` = Gaussian prior of
    P at that resolution (its area and variance constants are in pixels of it), then both are
    resized bilinearly (``cv2.INTER_LINEAR``, as in the release) to `original_size`.

    Args:
        cam: ``h x w`` float CAM (any non-negative scale).
        original_size: ``(width, height)`` of the image.
        resize: resolution of P and G before the final resize.

    Returns:
        P and G, ``height x width`` float32 in [0, 1].

    Raises:
        ValueError: `cam` is not 2-D or holds NaN / infinite values.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"the CAM must be a 2-D h x w map, got shape {cam.shape}")
    p = normalize_cam(cam)
    p = cv2.resize(np.ascontiguousarray(p, dtype=np.float32), (resize, resize), interpolation=cv2.INTER_LINEAR)
    g = gaussian_prior(p)
    width, height = original_size
    both = cv2.resize(np.stack([p, g], axis=-1), (width, height), interpolation=cv2.INTER_LINEAR)
    both = np.clip(both.reshape(height, width, 2), 0.0, 1.0)
    return np.ascontiguousarray(both[..., 0]), np.ascontiguousarray(both[..., 1])


__all__ = [
    "BACKGROUND_THRESHOLD",
    "FOREGROUND_THRESHOLD",
    "IGNORE_INDEX",
    "RESIZE",
    "double_threshold",
    "pseudo_mask_from_cam",
]
