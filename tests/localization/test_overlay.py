"""Box drawing and mask tinting on small images whose pixels can be checked one by one."""

from __future__ import annotations

import numpy as np
import pytest

from spol.localization import GREEN, RED, draw_boxes, localization_overlay, tint_mask


def test_box_outline_is_drawn_on_the_inclusive_corners_only() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    out = draw_boxes(image, [(5, 4, 12, 10)], GREEN, thickness=1)
    assert tuple(out[4, 5]) == GREEN and tuple(out[10, 12]) == GREEN and tuple(out[4, 12]) == GREEN
    assert not out[7, 8].any()  # interior
    assert not out[11, 13].any()  # outside
    assert not image.any()  # input untouched


def test_tint_changes_masked_pixels_only() -> None:
    image = np.full((6, 6, 3), 100, dtype=np.uint8)
    mask = np.zeros((6, 6), dtype=bool)
    mask[1:3, 2:5] = True
    out = tint_mask(image, mask, (200, 0, 100), alpha=0.5)
    assert (out[mask] == [150, 50, 100]).all()
    assert (out[~mask] == 100).all()
    with pytest.raises(ValueError, match="does not match"):
        tint_mask(image, np.zeros((5, 6), dtype=bool))


def test_overlay_draws_ground_truth_red_and_prediction_green() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    out = localization_overlay(image, np.zeros((40, 40), bool), (20, 20, 30, 30), gt_boxes=[(2, 2, 10, 10)])
    assert tuple(out[2, 2]) == RED and tuple(out[20, 20]) == GREEN
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(image.astype(np.float32), [], GREEN)
