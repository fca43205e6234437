"""The box extractor on hand-made masks with known boxes (protocol convention)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spol.localization import mask_to_box, mask_to_protocol_box, threshold_mask


def test_two_blobs_gives_the_larger_one() -> None:
    mask = np.zeros((30, 30), dtype=bool)
    mask[2:5, 1:4] = True  # 3 x 3, first in raster order
    mask[10:18, 10:20] = True  # rows 10..17, cols 10..19
    # boundingRect: x=10, y=10, w=10, h=8 -> x1 = x + w = 20, y1 = y + h = 18.
    assert mask_to_box(mask) == (10, 10, 20, 18)


def test_box_is_clipped_at_the_right_and_bottom_border() -> None:
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[5:, 7:] = 255  # touches both borders: x + w = 12 -> 11, y + h = 10 -> 9
    assert mask_to_box(mask) == (7, 5, 11, 9)


def test_full_mask_covers_the_image_inclusively() -> None:
    assert mask_to_box(np.ones((7, 9), dtype=bool)) == (0, 0, 8, 6)


def test_single_pixel_box_is_one_past_the_pixel() -> None:
    mask = np.zeros((8, 8), dtype=bool)
    mask[3, 4] = True
    assert mask_to_box(mask) == (4, 3, 5, 4)


def test_empty_mask_is_none_or_the_protocol_zero_box() -> None:
    empty = np.zeros((5, 6), dtype=bool)
    assert mask_to_box(empty) is None
    assert mask_to_protocol_box(empty) == (0, 0, 0, 0)


def test_ring_uses_its_outer_contour_not_the_hole() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:15, 3:16] = True
    mask[5:12, 6:13] = False  # the hole is a contour of its own under RETR_TREE
    assert mask_to_box(mask) == (3, 2, 16, 15)


def test_largest_is_by_polygon_area_and_ties_keep_opencvs_first() -> None:
    # A 1-pixel-wide line has polygon area 0 whatever its length; a 3 x 3 square has area 4.
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[1, 0:19] = 1
    mask[10:13, 10:13] = 1
    assert mask_to_box(mask) == (10, 10, 13, 13)
    # Two equal squares: the protocol takes np.argmax over OpenCV's contour order.
    tie = np.zeros((20, 20), dtype=np.uint8)
    tie[2:6, 2:6] = 1
    tie[12:16, 12:16] = 1
    contours, _ = cv2.findContours(tie, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    x, y, w, h = cv2.boundingRect(contours[int(np.argmax([cv2.contourArea(c) for c in contours]))])
    assert mask_to_box(tie) == (x, y, x + w, y + h)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3)), np.zeros(5), np.zeros((0, 3))])
def test_non_2d_or_empty_arrays_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask"):
        mask_to_box(bad)


def test_absolute_and_protocol_thresholds() -> None:
    scoremap = np.array([[0.1, 0.3, 0.45, 0.5]], dtype=np.float32)
    assert threshold_mask(scoremap, 0.4).tolist() == [[False, False, True, True]]
    # u = [25, 76, 114, 127], cut = int(0.4 * 127) = 50, mask = u > 50: relative to the maximum.
    assert threshold_mask(scoremap, 0.4, rule="protocol").tolist() == [[False, True, True, True]]
    # An all-zero map has no object under either rule (u > 0 is empty).
    assert not threshold_mask(np.zeros((3, 3)), 0.0, rule="protocol").any()
    assert not threshold_mask(np.zeros((3, 3)), 0.0).any()
    with pytest.raises(ValueError, match="rule"):
        threshold_mask(scoremap, 0.4, rule="relative")  # type: ignore[arg-type]
