"""SPOL's pseudo-mask math: CAM normalisation and the Gaussian prior.

All maps here are 2-D float arrays ``H x W`` (rows = y, columns = x) with values in [0, 1]:
``P`` is the normalised CAM of the ground-truth class (foreground evidence), ``G`` the
Gaussian prior fitted to P's uncertain band. The double threshold that turns ``(P, G)`` into
a segmentation target lives with the pseudo masks (`spol.stages.pseudo_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from spol.scoremaps import check_scoremap

CAM_EPSILON = 1e-6
"""Added to the CAM's maximum before dividing, as in the release (an all-zero CAM stays zero)."""

# The release's values (spec "Pseudo masks", step 2).
PRIOR_LOW = 0.1  # W keeps P where PRIOR_LOW <= P <= PRIOR_HIGH: the CAM's uncertain band
PRIOR_HIGH = 0.5
MIN_CONTOUR_AREA = 20.0  # contours of W > 0 with a smaller cv2.contourArea (pixels) are noise
SIGMA_DIVISOR = 10.0  # the fitted (co)variances are divided by this: a prior narrower than the band

# A region whose weighted x or y variance is below this (pixels^2) has all its weight on one
# line; one whose 1 - rho^2 is below _MIN_DECORRELATION is a straight line: no 2-D Gaussian fits.
_MIN_VARIANCE = 1e-6
_MIN_DECORRELATION = 1e-6


@dataclass(frozen=True)
class GaussianPriorSettings:
    """The Gaussian prior's parameters (the release's values are the defaults).

    Attributes:
        low: W keeps P where ``low <= P``.
        high: ... and ``P <= high``: the uncertain band of the CAM.
        min_area: contours with ``cv2.contourArea`` below this (pixels at the map's resolution)
            are skipped.
        sigma_divisor: the fitted variances and covariance are divided by this before the
            Gaussian is evaluated (a narrower prior than the band's spread).
    """

    low: float = PRIOR_LOW
    high: float = PRIOR_HIGH
    min_area: float = MIN_CONTOUR_AREA
    sigma_divisor: float = SIGMA_DIVISOR

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high:
            raise ValueError(f"Gaussian prior band needs 0 <= low < high, got low={self.low}, high={self.high}")
        if self.min_area < 0:
            raise ValueError(f"min_area must be >= 0, got {self.min_area}")
        if not self.sigma_divisor > 0:
            raise ValueError(f"sigma_divisor must be > 0, got {self.sigma_divisor}")


@dataclass(frozen=True)
class GaussianPrior:
    """The prior of one map, with what happened to its contours.

    Attributes:
        prior: G, ``H x W`` float32 in [0, 1]; zeros when no contour was used.
        contours: contours found (outer and inner) in ``W > 0``.
        used: contours that contributed a Gaussian.
        small: contours skipped because their area is below ``min_area``.
        degenerate: contours skipped because their weights admit no 2-D Gaussian (zero
            variance along x or y, |correlation| = 1, or zero total weight).
    """

    prior: np.ndarray
    contours: int
    used: int
    small: int
    degenerate: int


def normalize_cam(cam: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Divide a CAM by its maximum plus `CAM_EPSILON`: ``P = cam / (max(cam) + 1e-6)``.

    The spec's order is normalise first, then resize (`generate_pseudo_masks` resizes the result
    to 256 x 256). Negative values (a CAM without ReLU, such as the vanilla CAM's) are clipped
    to 0 first; for the ReLU'd maps of MFF-Net this is the identity.

    Args:
        cam: ``... x h x w`` float array or tensor; the maximum is taken per map over the last
            two dimensions, so a batch ``B x h x w`` is normalised map by map.

    Returns:
        Same type, shape and float dtype, values in [0, 1).

    Raises:
        ValueError: fewer than 2 dimensions, or NaN / infinite values.
    """
    if cam.ndim < 2:
        raise ValueError(f"normalize_cam expects a ... x h x w map, got shape {tuple(cam.shape)}")
    if isinstance(cam, Tensor):
        if not torch.isfinite(cam).all():
            raise ValueError("normalize_cam: the CAM contains NaN or infinite values")
        cam = cam.float().clamp(min=0)
        return cam / (cam.amax(dim=(-2, -1), keepdim=True) + CAM_EPSILON)
    values = np.asarray(cam)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("normalize_cam: the CAM contains NaN or infinite values")
    values = np.maximum(values, 0)
    return values / (values.max(axis=(-2, -1), keepdims=True) + CAM_EPSILON)


def compute_gaussian_prior(p: np.ndarray, settings: GaussianPriorSettings | None = None) -> GaussianPrior:
    """Fit SPOL's Gaussian prior to a normalised CAM, with per-contour statistics.

    ``W = P`` where ``low <= P <= high``, else 0. Every contour of ``W > 0`` (outer boundaries
    and hole boundaries: ``cv2.RETR_TREE`` as in the release; ``RETR_CCOMP`` and ``RETR_LIST``
    return the same contours, only the unused hierarchy differs) with
    ``cv2.contourArea >= min_area`` gives one Gaussian: restrict W to the filled contour
    (``cv2.drawContours``, filled, so a hole contour covers the hole and its rim), normalise it
    to sum 1, and take its weighted mean ``(ux, uy)``, variances ``sx, sy`` and covariance
    ``sxy`` (x = column, y = row, in pixels). With ``s' = s / sigma_divisor``:

        c   = -1 / (2 (1 - sxy'^2 / (sx' sy')))
        dx  = (x - ux)^2 / sx',   dy = (y - uy)^2 / sy',   dxy = (x - ux)(y - uy) sxy' / (sx' sy')
        g   = exp(c (dx - 2 dxy + dy))

    i.e. an unnormalised bivariate normal with covariance ``Sigma / sigma_divisor`` and peak 1
    at the weighted mean. ``G`` is the pixel-wise maximum of the contours' ``g`` (0 if none).
    Contours with zero variance along x or y, |correlation| = 1 or zero weight are skipped
    and counted as degenerate, so G never holds NaN.

    Args:
        p: P, ``H x W`` float in [0, 1].
        settings: the band, area and divisor; the release's values by default.

    Raises:
        spol.scoremaps.ScoreMapError: `p` is not a 2-D float map in [0, 1] (`spol.scoremaps.check_scoremap`).
    """
    settings = settings or GaussianPriorSettings()
    p = np.asarray(p)
    check_scoremap(p, "P")
    height, width = p.shape
    w = np.where((p >= settings.low) & (p <= settings.high), p, 0).astype(np.float64)
    contours, _ = cv2.findContours((w > 0).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    prior = np.zeros((height, width), dtype=np.float64)
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    used = small = degenerate = 0
    for contour in contours:
        if cv2.contourArea(contour) < settings.min_area:
            small += 1
            continue
        x0, y0, box_w, box_h = cv2.boundingRect(contour)
        region = np.zeros((box_h, box_w), dtype=np.uint8)
        cv2.drawContours(region, [contour], 0, 1, thickness=cv2.FILLED, offset=(-x0, -y0))
        weights = w[y0 : y0 + box_h, x0 : x0 + box_w] * region
        total = weights.sum()
        if not total > 0:
            degenerate += 1
            continue
        weights /= total
        gx = np.arange(x0, x0 + box_w, dtype=np.float64)
        gy = np.arange(y0, y0 + box_h, dtype=np.float64)
        col_weights, row_weights = weights.sum(axis=0), weights.sum(axis=1)
        ux, uy = col_weights @ gx, row_weights @ gy
        sx = col_weights @ (gx - ux) ** 2
        sy = row_weights @ (gy - uy) ** 2
        sxy = (gy - uy) @ weights @ (gx - ux)
        if sx < _MIN_VARIANCE or sy < _MIN_VARIANCE or 1 - sxy**2 / (sx * sy) < _MIN_DECORRELATION:
            degenerate += 1
            continue
        sx_, sy_, sxy_ = sx / settings.sigma_divisor, sy / settings.sigma_divisor, sxy / settings.sigma_divisor
        c = -1.0 / (2.0 * (1.0 - sxy_**2 / (sx_ * sy_)))
        dx = (xs - ux) ** 2 / sx_
        dy = (ys - uy) ** 2 / sy_
        dxy = (xs - ux) * (ys - uy) * sxy_ / (sx_ * sy_)
        # The quadratic form is >= 0; rounding must not push the exponent above 0 (G <= 1).
        np.maximum(prior, np.exp(np.minimum(c * (dx - 2 * dxy + dy), 0.0)), out=prior)
        used += 1
    return GaussianPrior(prior.astype(np.float32), len(contours), used, small, degenerate)


def gaussian_prior(
    p: np.ndarray,
    *,
    low: float = PRIOR_LOW,
    high: float = PRIOR_HIGH,
    min_area: float = MIN_CONTOUR_AREA,
    sigma_divisor: float = SIGMA_DIVISOR,
) -> np.ndarray:
    """SPOL's Gaussian prior G of a normalised CAM P (see `compute_gaussian_prior` for the formula).

    Args:
        p: P, ``H x W`` float in [0, 1].
        low: lower end of the uncertain band ``low <= P <= high`` the Gaussians are fitted to.
        high: upper end of that band.
        min_area: contours of smaller ``cv2.contourArea`` (pixels) are skipped.
        sigma_divisor: divisor of the fitted variances and covariance.

    Returns:
        G, ``H x W`` float32 in [0, 1]; zeros when no contour qualifies.
    """
    settings = GaussianPriorSettings(low=low, high=high, min_area=min_area, sigma_divisor=sigma_divisor)
    return compute_gaussian_prior(p, settings).prior


__all__ = [
    "CAM_EPSILON",
    "MIN_CONTOUR_AREA",
    "PRIOR_HIGH",
    "PRIOR_LOW",
    "SIGMA_DIVISOR",
    "GaussianPrior",
    "GaussianPriorSettings",
    "compute_gaussian_prior",
    "gaussian_prior",
    "normalize_cam",
]
