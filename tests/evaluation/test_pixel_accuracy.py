"""PxAP: ground-truth masks, histograms against numpy, and hand-computable curves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from spol.evaluation import (
    ImageOutcome,
    ProtocolCounts,
    cam_thresholds,
    compute_pxap,
    load_protocol_mask,
    score_histograms,
)
from spol.scoremaps import ScoreMapError

THRESHOLDS = cam_thresholds(0.01)


def _pxap(*images: tuple[np.ndarray, np.ndarray]) -> float | None:
    """PxAP of ``(map, protocol mask)`` pairs, accumulated by the protocol's counts (masks only)."""
    counts = ProtocolCounts(THRESHOLDS, contours=(), masks=True)
    for scoremap, gt in images:
        counts.add(ImageOutcome(histograms=score_histograms(scoremap, gt, THRESHOLDS)))
    return counts.result().pxap


def _png(path: Path, array: np.ndarray) -> Path:
    cv2.imwrite(str(path), array)
    return path


def _mask(tmp_path: Path) -> np.ndarray:
    """A 224 mask: a 100 x 60 foreground block and an ignore band beside it, from 448-px files."""
    fg = np.zeros((448, 448), np.uint8)
    fg[100:300, 40:160] = 255
    ignore = np.zeros((448, 448), np.uint8)
    ignore[0:448, 140:200] = 255  # overlaps the foreground on columns 140..159
    return load_protocol_mask([_png(tmp_path / "m.png", fg)], _png(tmp_path / "i.png", ignore))


def test_protocol_mask_nearest_resize_union_and_ignore(tmp_path):
    a = np.zeros((20, 10), np.uint8)
    a[0:10, 0:5] = 1  # value 1 > 0.5 is foreground
    b = np.zeros((20, 10), np.uint8)
    b[10:20, 5:10] = 200
    mask = load_protocol_mask([_png(tmp_path / "a.png", a), _png(tmp_path / "b.png", b)], resize=224)
    assert mask.shape == (224, 224) and mask.dtype == np.uint8
    assert mask[:112, :112].all() and mask[112:, 112:].all() and not mask[:112, 112:].any()
    m = _mask(tmp_path)
    assert set(np.unique(m)) == {0, 1, 255}
    assert m[50:150, 20:70].all() and (m[50:150, 20:80] == 1).sum() == 100 * 60
    assert (m == 255).sum() == 224 * 30 - 100 * 10  # ignore band minus its foreground part


def test_missing_mask_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_protocol_mask([tmp_path / "nope.png"])
    with pytest.raises(ValueError, match="at least one"):
        load_protocol_mask([])


def test_histograms_equal_numpy_histogram_on_bin_edges():
    rng = np.random.default_rng(0)
    values = np.concatenate([THRESHOLDS, [1.0, 0.0, 0.995], rng.random(2000)])
    values = np.resize(values, (224, 224)).astype(np.float32)
    gt = rng.integers(0, 3, (224, 224)).astype(np.uint8)
    gt[gt == 2] = 255
    fg, bg = score_histograms(values, gt, THRESHOLDS)
    edges = np.append(THRESHOLDS, [1.0, 2.0, 3.0])
    assert np.array_equal(fg, np.histogram(values.astype(np.float64)[gt == 1], bins=edges)[0])
    assert np.array_equal(bg, np.histogram(values.astype(np.float64)[gt == 0], bins=edges)[0])


def test_perfect_map_gives_100_whatever_the_ignore_scores(tmp_path):
    gt = _mask(tmp_path)
    for ignore_score in (0.0, 1.0):
        s = gt.astype(np.float64)
        s[gt == 255] = ignore_score
        assert _pxap((s, gt)) == 100.0


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_constant_map_gives_the_foreground_share(tmp_path, value):
    # One point of the curve: precision = fg / (fg + bg) at recall 1.
    gt = _mask(tmp_path)
    fg, bg = int((gt == 1).sum()), int((gt == 0).sum())
    assert _pxap((np.full((224, 224), value), gt)) == pytest.approx(100 * fg / (fg + bg))


def test_two_level_map_known_curve():
    gt = np.zeros((224, 224), np.uint8)
    gt[:, :112] = 1  # half foreground
    s = np.zeros((224, 224))
    s[:, :56] = 0.8  # half the foreground scores high, nothing else does
    # recall 0.5 at precision 1, then recall 1 at precision 0.5 -> 100 * (0.5 + 0.25)
    assert _pxap((s, gt)) == pytest.approx(75.0)


def test_empty_gt_mask_image_only_adds_background():
    gt = np.zeros((224, 224), np.uint8)
    gt[:10, :10] = 1
    empty = (np.zeros((224, 224)), np.zeros((224, 224), np.uint8))  # empty gt: all background
    assert _pxap((gt.astype(float), gt), empty) == 100.0
    with pytest.raises(ValueError, match="no foreground"):
        _pxap(empty)


def test_compute_pxap_without_any_pixel_raises():
    with pytest.raises(ValueError, match="no foreground"):
        compute_pxap(np.zeros(102), np.zeros(102))


def test_nan_map_raises():
    with pytest.raises(ScoreMapError, match="NaN"):
        score_histograms(np.full((224, 224), np.nan), np.zeros((224, 224), np.uint8), THRESHOLDS)
