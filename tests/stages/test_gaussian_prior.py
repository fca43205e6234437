import cv2
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from spol.stages.pseudo_masks.gaussian_prior import (
    CAM_EPSILON,
    GaussianPriorSettings,
    compute_gaussian_prior,
    gaussian_prior,
    normalize_cam,
)


def _release_gaussian_prior(pred: np.ndarray) -> np.ndarray:
    """A literal port of the release's loop (full-image arrays, one contour at a time)."""
    height, width = pred.shape
    weights = pred.copy()
    weights[np.where(pred < 0.1)] = 0
    weights[np.where(pred > 0.5)] = 0
    contours = cv2.findContours(np.uint8(weights > 0) * 255, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    gaus = np.zeros((height, width))
    for i in range(len(contours)):
        if cv2.contourArea(contours[i]) < 20:
            continue
        weight = np.zeros((height, width, 3))
        weight = cv2.drawContours(weight, contours, i, color=(1, 1, 1), thickness=-1)
        weight = weight[:, :, 0] * weights
        weight = weight / weight.sum()
        x, y = np.meshgrid(np.arange(width), np.arange(height))
        ux, uy = (weight * x).sum(), (weight * y).sum()
        sx, sy = (weight * (x - ux) ** 2).sum(), (weight * (y - uy) ** 2).sum()
        sxy = (weight * (x - ux) * (y - uy)).sum()
        sx, sy, sxy = sx / 10, sy / 10, sxy / 10
        c = -1 / (2 * (1 - sxy**2 / sx / sy))
        dx, dy = (x - ux) ** 2 / sx, (y - uy) ** 2 / sy
        dxy = (x - ux) * (y - uy) * sxy / sx / sy
        gaus = np.maximum(gaus, np.exp(c * (dx - 2 * dxy + dy)))
    return gaus


def _rectangle(shape=(64, 64), rows=slice(20, 31), cols=slice(10, 41), value=0.3) -> np.ndarray:
    p = np.zeros(shape, dtype=np.float32)
    p[rows, cols] = value
    return p


def test_single_blob_gaussian_is_centred_on_its_weighted_mean_with_the_divided_variances():
    # 11 rows (20..30) x 31 columns (10..40) of constant weight: mean (25, 25); the variance of
    # n consecutive integers is (n^2 - 1) / 12: sx = 80, sy = 10, sxy = 0. Divided by 10: 8 and 1.
    g = gaussian_prior(_rectangle())
    assert g.dtype == np.float32 and g.shape == (64, 64)
    assert np.unravel_index(np.argmax(g), g.shape) == (25, 25)
    assert g[25, 25] == pytest.approx(1.0)
    for d in (1, 3, 6):
        assert g[25, 25 + d] == pytest.approx(np.exp(-(d**2) / (2 * 8.0)), rel=1e-5)
        assert g[25, 25 - d] == pytest.approx(np.exp(-(d**2) / (2 * 8.0)), rel=1e-5)
    for d in (1, 2):
        assert g[25 + d, 25] == pytest.approx(np.exp(-(d**2) / (2 * 1.0)), rel=1e-5)


def test_asymmetric_weights_move_the_centre_to_the_weighted_mean():
    # Weights 0.1 on the left half, 0.5 on the right: the mean shifts right of the box centre.
    p = np.zeros((40, 60), dtype=np.float32)
    p[10:21, 10:20] = 0.1
    p[10:21, 20:30] = 0.5
    ux = (10 * 0.1 * 14.5 + 10 * 0.5 * 24.5) / 6  # column means 14.5 and 24.5, total weight 6 per row
    sx = (0.1 * ((np.arange(10, 20) - ux) ** 2).sum() + 0.5 * ((np.arange(20, 30) - ux) ** 2).sum()) / 6
    g = gaussian_prior(p)
    assert np.unravel_index(np.argmax(g), g.shape) == (15, round(ux))
    # On the mean's row (y = 15, sxy = 0) the prior is exp(-(x - ux)^2 / (2 sx / 10)).
    assert_allclose(g[15], np.exp(-((np.arange(60) - ux) ** 2) / (2 * sx / 10)), rtol=1e-5, atol=1e-7)


def test_contours_below_20_px_are_skipped_and_20_is_kept():
    tiny = _rectangle(rows=slice(10, 14), cols=slice(10, 14))  # 4 x 4 px: contour area 3 x 3 = 9
    result = compute_gaussian_prior(tiny)
    assert (result.contours, result.used, result.small) == (1, 0, 1)
    assert not result.prior.any()
    edge = _rectangle(rows=slice(10, 13), cols=slice(10, 21))  # 3 x 11 px: area 2 x 10 = 20, kept
    result = compute_gaussian_prior(edge)
    assert (result.used, result.small) == (1, 0)
    assert result.prior.max() == pytest.approx(1.0)


@pytest.mark.parametrize("value", [0.05, 0.0999, 0.5001, 0.9])
def test_no_pixel_in_the_band_gives_a_zero_prior(value):
    p = _rectangle(value=value)
    p[p == 0] = 0.02
    assert not gaussian_prior(p).any()


def test_band_limits_are_inclusive():
    assert gaussian_prior(_rectangle(value=0.1)).max() == pytest.approx(1.0)
    assert gaussian_prior(_rectangle(value=0.5)).max() == pytest.approx(1.0)


def test_two_blobs_give_the_maximum_of_their_gaussians():
    a = _rectangle(rows=slice(5, 20), cols=slice(5, 26), value=0.2)  # centre (12, 15)
    b = _rectangle(rows=slice(35, 60), cols=slice(30, 41), value=0.4)  # centre (47, 35)
    both = compute_gaussian_prior(a + b)
    assert both.used == 2
    assert_allclose(both.prior, np.maximum(gaussian_prior(a), gaussian_prior(b)), atol=1e-7)
    assert both.prior[12, 15] == pytest.approx(1.0) and both.prior[47, 35] == pytest.approx(1.0)


def test_a_ring_gives_an_outer_and_an_inner_contour():
    # A cone peaking above 0.5: the band 0.1 <= P <= 0.5 is an annulus with a hole.
    ys, xs = np.mgrid[0:64, 0:64]
    p = np.clip(1 - np.hypot(xs - 32, ys - 32) / 20, 0, None).astype(np.float32)
    result = compute_gaussian_prior(p)
    assert (result.contours, result.used) == (2, 2)
    assert result.prior[32, 32] == pytest.approx(1.0, abs=1e-3)
    assert_allclose(result.prior, _release_gaussian_prior(p), atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_release_loop_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    p = cv2.GaussianBlur(rng.random((64, 80)).astype(np.float32), (0, 0), 4)
    p = (p - p.min()) / (p.max() - p.min() + 1e-6)
    result = compute_gaussian_prior(p)
    assert result.used >= 1
    assert_allclose(result.prior, _release_gaussian_prior(p), atol=1e-6)


def test_settings_change_the_band_and_are_checked():
    p = _rectangle(value=0.7)
    assert not gaussian_prior(p).any()
    assert gaussian_prior(p, high=0.8).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="low < high"):
        GaussianPriorSettings(low=0.5, high=0.1)
    with pytest.raises(ValueError, match="sigma_divisor"):
        GaussianPriorSettings(sigma_divisor=0)


def test_prior_rejects_nan_and_non_maps():
    p = _rectangle()
    p[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gaussian_prior(p)
    with pytest.raises(ValueError, match="2-D"):
        gaussian_prior(np.zeros((2, 8, 8), dtype=np.float32))


def test_normalize_cam_divides_by_max_plus_epsilon_per_map():
    cam = np.array([[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    out = normalize_cam(cam)
    assert_allclose(out[0], cam[0] / (4.0 + CAM_EPSILON))
    assert not out[1].any()  # an all-zero CAM stays zero
    assert_allclose(normalize_cam(torch.from_numpy(cam)).numpy(), out)
    with pytest.raises(ValueError, match="NaN"):
        normalize_cam(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        normalize_cam(torch.tensor([[float("nan"), 1.0]]))
