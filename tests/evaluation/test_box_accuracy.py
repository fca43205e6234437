"""MaxBoxAcc pieces: hand-made maps with known boxes, and the fast path against a plain loop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spol.evaluation import (
    cam_thresholds,
    compute_iou,
    correct_at_thresholds,
    rescale_boxes_to_protocol,
    scoremap_to_boxes,
    scoremap_to_uint8,
)
from spol.evaluation.box_accuracy import _checked_uint8
from spol.scoremaps import ScoreMapError

THRESHOLDS = cam_thresholds(0.01)


def plain_boxes(scoremap: np.ndarray, thresholds: np.ndarray, multi: bool) -> list[list[list[int]]]:
    """The protocol written as directly as possible: threshold and trace the whole map at every t."""
    height, width = scoremap.shape
    u = (scoremap.astype(np.float64) * 255).astype(np.uint8)
    out = []
    for t in thresholds:
        _, mask = cv2.threshold(u, int(t * np.max(u)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            out.append([[0, 0, 0, 0]])
            continue
        if not multi:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        out.append(boxes)
    return out


def plain_correct(
    scoremap: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, ious: tuple[int, ...], multi: bool
) -> np.ndarray:
    best = []
    for boxes in plain_boxes(scoremap, thresholds, multi):
        values = []
        for a in boxes:
            for b in gt:
                iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
                ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
                inter = iw * ih
                union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
                values.append(inter / union if union > 0 else 0.0)
        best.append(max(values))
    return np.array([[v >= level / 100 for v in best] for level in ious])


def as_lists(boxes: list[np.ndarray]) -> list[list[list[int]]]:
    return [b.tolist() for b in boxes]


# ---- rescaling -------------------------------------------------------------------------------


def test_rescale_truncates_each_coordinate_toward_zero():
    # 1*224/1000 = 0.224, 2*224/10 = 44.8, 999*224/1000 = 223.776, 3*224/10 = 67.2
    out = rescale_boxes_to_protocol([(1, 2, 999, 3)], (1000, 10))
    assert out.tolist() == [[0, 44, 223, 67]]
    assert out.dtype == np.int64


def test_rescale_very_tall_image_and_full_box():
    # 100 x 3000: x scaled by 2.24, y by 224/3000; x1 = width maps to 224 (one past the grid)
    out = rescale_boxes_to_protocol([(0, 2999, 100, 3000), (50, 13, 51, 14)], (100, 3000))
    assert out.tolist() == [[0, 223, 224, 224], [112, 0, 114, 1]]


def test_rescale_one_pixel_box_stays_a_point():
    assert rescale_boxes_to_protocol([(5, 5, 5, 5)], (224, 224)).tolist() == [[5, 5, 5, 5]]


def test_rescale_rejects_boxes_against_the_convention():
    with pytest.raises(ValueError, match="non-negative"):
        rescale_boxes_to_protocol([(-1, 0, 3, 3)], (10, 10))
    with pytest.raises(ValueError, match="x1 >= x0"):
        rescale_boxes_to_protocol([(4, 0, 3, 3)], (10, 10))


# ---- IoU -------------------------------------------------------------------------------------


def test_iou_inclusive_areas_known_value():
    # intersection x 3..4 (2 px) by y 2..5 (4 px) = 8; areas 25 and 10
    assert compute_iou([[1, 2, 5, 6]], [[3, 1, 4, 5]])[0, 0] == pytest.approx(8 / 27)


def test_iou_one_pixel_boxes_and_shape():
    ious = compute_iou(np.zeros((3, 4), int), np.array([[0, 0, 0, 0], [1, 1, 1, 1]]))
    assert ious.shape == (3, 2)
    assert (ious[:, 0] == 1).all() and (ious[:, 1] == 0).all()


def test_iou_rejects_inverted_box():
    with pytest.raises(ValueError):
        compute_iou([[1, 1, 0, 0]], [[1, 1, 2, 2]])


# ---- boxes from maps -------------------------------------------------------------------------


def test_all_zero_map_gives_origin_box_at_every_threshold():
    boxes = scoremap_to_boxes(np.zeros((224, 224)), THRESHOLDS)
    assert len(boxes) == 100 and all(b.tolist() == [[0, 0, 0, 0]] for b in boxes)


def test_constant_map_gives_whole_image_at_every_threshold():
    # u = 127 everywhere; cut int(t * 127) < 127 for every t < 1; boundingRect w = 224 -> x1 = min(224, 223)
    boxes = scoremap_to_boxes(np.full((224, 224), 0.5), THRESHOLDS)
    assert all(b.tolist() == [[0, 0, 223, 223]] for b in boxes)


def test_unimodal_map_known_boxes():
    s = np.zeros((6, 8))
    s[1:5, 1:6] = 0.4  # ring level
    s[2:4, 3:5] = 1.0  # peak
    # u: 102 and 255. t=0: u>0 -> rows 1..4, cols 1..5 -> (1, 1, min(6, 7), min(5, 5)) = (1, 1, 6, 5)
    # t=0.4: cut 102 -> peak only rows 2..3, cols 3..4 -> (3, 2, 5, 4)
    boxes = scoremap_to_boxes(s, np.array([0.0, 0.4]))
    assert as_lists(boxes) == [[[1, 1, 6, 5]], [[3, 2, 5, 4]]]


def test_max_below_one_scales_the_cut():
    s = np.zeros((10, 10))
    s[2:8, 2:8] = 0.3  # u = 76
    s[4:6, 4:6] = 0.5  # u = 127 = max
    # t = 0.7: cut int(0.7 * 127) = 88 keeps the 0.5 core; a cut on the 255 scale (178) would keep nothing
    assert as_lists(scoremap_to_boxes(s, np.array([0.7]))) == [[[4, 4, 6, 6]]]


def test_border_touching_blob_is_clipped_to_last_pixel():
    s = np.zeros((20, 30))
    s[12:, 25:] = 1.0  # touches right and bottom borders
    # boundingRect (25, 12, 5, 8): x + w = 30 -> 29, y + h = 20 -> 19
    assert as_lists(scoremap_to_boxes(s, np.array([0.5]))) == [[[25, 12, 29, 19]]]


def test_area_tie_keeps_opencv_first_contour():
    s = np.zeros((10, 10))
    s[1:3, 6:8] = 1.0
    s[5:7, 1:3] = 1.0
    # Equal areas; OpenCV lists top-level contours in reverse scan order, so the lower square comes first.
    assert as_lists(scoremap_to_boxes(s, np.array([0.5]))) == [[[1, 5, 3, 7]]]
    multi = scoremap_to_boxes(s, np.array([0.5]), multi_contour=True)[0].tolist()
    assert sorted(multi) == [[1, 5, 3, 7], [6, 1, 8, 3]]


def test_largest_contour_is_by_polygon_area_not_pixels():
    s = np.zeros((12, 12))
    s[1, 1:11] = 1.0  # a 10-pixel line: polygon area 0
    s[5:8, 5:8] = 1.0  # a 9-pixel square: polygon area 4
    assert as_lists(scoremap_to_boxes(s, np.array([0.5]))) == [[[5, 5, 8, 8]]]


@pytest.mark.parametrize(
    "bad", [np.full((4, 4), np.nan), np.full((4, 4), 1.5), np.full((4, 4), -0.1), np.zeros((2, 4, 4))]
)
def test_invalid_maps_raise(bad):
    with pytest.raises(ScoreMapError):
        scoremap_to_boxes(bad, THRESHOLDS)
    with pytest.raises(ScoreMapError):
        correct_at_thresholds(bad, np.array([[0, 0, 1, 1]]), THRESHOLDS)


# ---- correctness and accumulation ------------------------------------------------------------


def test_several_gt_boxes_best_one_counts():
    s = np.zeros((224, 224))
    s[100:150, 100:150] = 1.0  # box (100, 100, 150, 150) at every t
    gts = np.array([[0, 0, 10, 10], [100, 100, 150, 150]])
    correct = correct_at_thresholds(s, gts, THRESHOLDS)
    assert correct.shape == (3, 100) and correct.all()
    assert not correct_at_thresholds(s, gts[:1], THRESHOLDS).any()


def test_one_pixel_gt_at_origin_matches_the_empty_box():
    # No contour gives [0, 0, 0, 0], which is a one-pixel box: IoU 1 with a one-pixel gt at the origin.
    assert correct_at_thresholds(np.zeros((224, 224)), np.array([[0, 0, 0, 0]]), THRESHOLDS).all()
    assert not correct_at_thresholds(np.zeros((224, 224)), np.array([[0, 0, 1, 0]]), THRESHOLDS, (70,)).any()


def test_iou_level_is_inclusive():
    s = np.zeros((20, 20))
    s[0:2, 0:1] = 1.0  # box (0, 0, 1, 2): 2 x 3 = 6 px
    gt = np.array([[0, 0, 1, 4]])  # 2 x 5 = 10 px, intersection 6 -> IoU 0.6
    assert correct_at_thresholds(s, gt, np.array([0.5]), (60, 61)).tolist() == [[True], [False]]


def test_cam_thresholds_grid():
    assert len(cam_thresholds(0.01)) == 100 and cam_thresholds(0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match="cam_curve_interval"):
        cam_thresholds(0)


# ---- fast path equals the plain loop --------------------------------------------------------


@st.composite
def scoremaps(draw: st.DrawFn) -> np.ndarray:
    """Small maps: few levels (plateaus, ties, holes) or many, optionally upsampled, max sometimes < 1."""
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 24))
    levels = draw(st.sampled_from([2, 3, 5, 256]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    small = rng.integers(0, levels, (max(1, height // 3), max(1, width // 3))).astype(np.float64) / (levels - 1)
    if draw(st.booleans()):
        s = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    else:
        s = rng.integers(0, levels, (height, width)).astype(np.float64) / (levels - 1)
    scale = draw(st.sampled_from([1.0, 1.0, 0.6, 0.02]))
    return np.clip(s * scale, 0, 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scoremaps(), multi=st.booleans(), interval=st.sampled_from([0.01, 0.05, 0.3]))
def test_boxes_equal_plain_loop(s, multi, interval):
    thresholds = cam_thresholds(interval)
    fast = as_lists(scoremap_to_boxes(s, thresholds, multi_contour=multi))
    plain = plain_boxes(s, thresholds, multi)
    if multi:  # the max over boxes does not depend on their order
        fast, plain = [sorted(b) for b in fast], [sorted(b) for b in plain]
    assert fast == plain


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scoremaps(), multi=st.booleans(), data=st.data())
def test_correct_equals_plain_loop(s, multi, data):
    height, width = s.shape
    count = data.draw(st.integers(1, 3))
    gt = []
    for _ in range(count):
        x0 = data.draw(st.integers(0, width - 1))
        y0 = data.draw(st.integers(0, height - 1))
        gt.append([x0, y0, data.draw(st.integers(x0, width)), data.draw(st.integers(y0, height))])
    gt = np.array(gt)
    ious = (30, 50, 70)
    thresholds = cam_thresholds(0.02)
    fast = correct_at_thresholds(s, gt, thresholds, ious, multi_contour=multi)
    assert np.array_equal(fast, plain_correct(s, gt, thresholds, ious, multi))


def test_smooth_224_maps_equal_plain_loop():
    rng = np.random.default_rng(3)
    for i in range(6):
        low = rng.random((7 + 7 * (i % 3), 7 + 7 * (i % 3))).astype(np.float32) ** 3
        s = cv2.resize(cv2.GaussianBlur(low, (0, 0), 1.0), (224, 224), interpolation=cv2.INTER_LINEAR)
        s = (s - s.min()) / (s.max() - s.min())
        for multi in (False, True):
            fast = as_lists(scoremap_to_boxes(s, THRESHOLDS, multi_contour=multi))
            plain = plain_boxes(s, THRESHOLDS, multi)
            assert [sorted(b) for b in fast] == [sorted(b) for b in plain]
            gt = np.array([[40, 30, 150, 200]])
            assert np.array_equal(
                correct_at_thresholds(s, gt, THRESHOLDS, multi_contour=multi),
                plain_correct(s, gt, THRESHOLDS, (30, 50, 70), multi),
            )


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(0, 1, width=32), min_size=1, max_size=64),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_compiled_uint8_levels_equal_the_protocols(values, dtype):
    # Exact multiples of 1/255 and values a hair below them are where truncation bites.
    edges = [k / 255 for k in range(256)] + [np.nextafter(k / 255, 0) for k in range(1, 256)]
    s = np.array(values + edges, dtype=dtype).reshape(1, -1)
    u, valid = _checked_uint8(s)
    assert valid and np.array_equal(u, scoremap_to_uint8(s))


def test_compiled_uint8_levels_flag_invalid_values():
    for bad in (np.nan, -1e-9, 1.0000001, np.inf):
        assert not _checked_uint8(np.array([[0.5, bad]]))[1]
