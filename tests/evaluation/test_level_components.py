"""The level sweep gives OpenCV's contour boxes exactly, cut by cut, and leaves only ties to OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spol.evaluation.level_components import contour_boxes_at_cuts


def opencv_boxes(u: np.ndarray, cut: int, multi: bool) -> list[tuple[int, ...]]:
    """The reference: findContours on the whole mask, largest contour (first on ties) or all."""
    height, width = u.shape
    contours = cv2.findContours((u > cut).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if not multi:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return sorted(boxes)


def sweep_boxes(u: np.ndarray, cuts: np.ndarray, multi: bool) -> list[list[tuple[int, ...]] | None]:
    """Per cut: the sorted boxes, or None where the sweep leaves the cut to OpenCV."""
    needs_opencv, offsets, boxes = contour_boxes_at_cuts(u, cuts, multi)
    assert offsets[0] == 0 and offsets[-1] == len(boxes) and len(offsets) == len(cuts) + 1
    return [
        None if needs_opencv[i] else sorted(map(tuple, boxes[offsets[i] : offsets[i + 1]].tolist()))
        for i in range(len(cuts))
    ]


@st.composite
def level_maps(draw: st.DrawFn) -> np.ndarray:
    """Small uint8 maps rich in holes, nested islands, thin lines, plateaus and ties."""
    height = draw(st.integers(1, 20))
    width = draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["noise", "few_levels", "sparse", "smooth", "blocks"]))
    if kind == "noise":
        return rng.integers(0, 256, (height, width)).astype(np.uint8)
    if kind == "few_levels":
        return (rng.integers(0, 4, (height, width)) * 60).astype(np.uint8)
    if kind == "sparse":
        return ((rng.random((height, width)) < 0.45) * rng.integers(1, 256, (height, width))).astype(np.uint8)
    grid = int(rng.integers(2, 6))
    if kind == "smooth":
        low = rng.random((grid, grid)).astype(np.float32) ** 3
        return (cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR) * 255).astype(np.uint8)
    low = (rng.integers(0, 3, (grid, grid)) * 100).astype(np.uint8)
    return cv2.resize(low, (width, height), interpolation=cv2.INTER_NEAREST)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(u=level_maps(), multi=st.booleans())
def test_every_cut_matches_opencv(u, multi):
    cuts = np.arange(int(u.max()) - 1, -2, -1)  # every non-empty mask, and -1 (all pixels)
    for cut, boxes in zip(cuts.tolist(), sweep_boxes(u, cuts, multi), strict=True):
        if boxes is not None:
            assert boxes == opencv_boxes(u, cut, multi), f"cut {cut}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(u=level_maps())
def test_multi_contour_never_needs_opencv(u):
    cuts = np.arange(int(u.max()) - 1, -1, -1)
    assert not contour_boxes_at_cuts(u, cuts, True)[0].any()


def test_smooth_224_map_matches_opencv_at_every_cut():
    rng = np.random.default_rng(7)
    low = cv2.GaussianBlur(rng.random((14, 14)).astype(np.float32) ** 3, (0, 0), 1.0)
    s = cv2.resize(low, (224, 224), interpolation=cv2.INTER_LINEAR)
    u = ((s - s.min()) / (s.max() - s.min()) * 255).astype(np.uint8)
    cuts = np.arange(254, -1, -1)
    for multi in (False, True):
        results = sweep_boxes(u, cuts, multi)
        assert sum(r is None for r in results) <= 5  # ties are rare on smooth maps
        for cut, boxes in zip(cuts.tolist(), results, strict=True):
            if boxes is not None:
                assert boxes == opencv_boxes(u, cut, multi), f"cut {cut}, multi {multi}"


def test_ring_lists_its_hole_contour():
    u = np.zeros((9, 9), np.uint8)
    u[1:8, 1:8] = 200
    u[3:6, 4:6] = 10  # a 3 x 2 hole
    (boxes,) = sweep_boxes(u, np.array([50]), True)
    # The outer box is clipped to W - 1; the hole's contour runs one pixel around the hole.
    assert boxes == [(1, 1, 8, 8), (3, 2, 7, 7)]
    assert boxes == opencv_boxes(u, 50, True)
    (single,) = sweep_boxes(u, np.array([50]), False)
    assert single == [(1, 1, 8, 8)]


def test_area_tie_goes_to_the_component_starting_last_in_raster_order():
    u = np.zeros((10, 20), np.uint8)
    u[2:5, 12:15] = 255
    u[4:7, 2:5] = 255  # the same polygon area; starts on a later row, so OpenCV lists it first
    assert sweep_boxes(u, np.array([100]), False) == [[(2, 4, 5, 7)]] == [opencv_boxes(u, 100, False)]
    u[4:7, 2:5] = 0
    u[2:5, 2:5] = 255  # same row: the right one starts later
    assert sweep_boxes(u, np.array([100]), False) == [[(12, 2, 15, 5)]] == [opencv_boxes(u, 100, False)]


def test_uncertain_largest_contour_with_holes_is_left_to_opencv():
    u = np.zeros((9, 20), np.uint8)
    for x0 in (1, 11):  # two equal rings: their outer areas are bounded, not known
        u[1:8, x0 : x0 + 7] = 255
        u[3:6, x0 + 2 : x0 + 5] = 0
    needs_opencv, offsets, boxes = contour_boxes_at_cuts(u, np.array([100]), False)
    assert needs_opencv.tolist() == [True] and boxes.tolist() == [[1, 1, 17, 7]]  # the mask's pixels, to trace
    assert opencv_boxes(u, 100, False) == [(11, 1, 18, 8)]


def test_empty_mask_is_left_to_the_caller():
    needs_opencv, offsets, boxes = contour_boxes_at_cuts(np.zeros((4, 4), np.uint8), np.array([0]), True)
    assert needs_opencv.tolist() == [True] and len(boxes) == 0


@pytest.mark.parametrize("cuts", [[3, 5], [5, 5], [255], [-2], [[1]]])
def test_rejects_cuts_out_of_order_or_range(cuts):
    with pytest.raises(ValueError, match="cuts must be distinct, decreasing"):
        contour_boxes_at_cuts(np.zeros((4, 4), np.uint8), np.array(cuts), False)


def test_rejects_a_map_that_is_not_uint8():
    with pytest.raises(ValueError, match="2-D uint8"):
        contour_boxes_at_cuts(np.zeros((4, 4), np.float32), np.array([0]), False)
