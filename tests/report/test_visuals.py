"""Report pictures: colour maps, pseudo-mask colours, boxes and PNG encoding on tiny images."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from spol.localization import GREEN, RED
from spol.report.visuals import (
    PSEUDO_BACKGROUND,
    PSEUDO_FOREGROUND,
    PSEUDO_IGNORE,
    heatmap_overlay,
    pseudo_mask_overlay,
    to_png_base64,
    with_boxes,
)


def test_png_base64_round_trips_exactly() -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(to_png_base64(image)))))
    np.testing.assert_array_equal(decoded, image)
    with pytest.raises(ValueError, match="uint8"):
        to_png_base64(image.astype(np.float32))


def test_heatmap_uses_jet_and_resizes_the_map() -> None:
    image = np.full((8, 8, 3), 50, dtype=np.uint8)
    assert (heatmap_overlay(image, np.zeros((4, 4)), alpha=0.0) == image).all()
    # JET: 0 is dark blue, 1 is dark red (RGB order after conversion).
    cold = heatmap_overlay(image, np.zeros((4, 4)), alpha=1.0)
    hot = heatmap_overlay(image, np.ones((4, 4)), alpha=1.0)
    assert cold.shape == image.shape
    assert cold[..., 2].min() > 100 and cold[..., 0].max() == 0
    assert hot[..., 0].min() > 100 and hot[..., 2].max() == 0
    with pytest.raises(ValueError, match="NaN"):
        heatmap_overlay(image, np.full((4, 4), np.nan))


def test_pseudo_mask_colours_each_class_and_upsamples_nearest() -> None:
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    pseudo = np.array([[1, 0, 255]], dtype=np.uint8)  # 1 x 3 -> 4 x 6, two columns per value
    out = pseudo_mask_overlay(image, pseudo, alpha=1.0)
    assert (out[:, :2] == PSEUDO_FOREGROUND).all()
    assert (out[:, 2:4] == PSEUDO_BACKGROUND).all()
    assert (out[:, 4:] == PSEUDO_IGNORE).all()
    with pytest.raises(ValueError, match="0, 1 or 255"):
        pseudo_mask_overlay(image, np.full((4, 6), 7, dtype=np.uint8))


def test_prediction_is_drawn_over_ground_truth() -> None:
    image = np.zeros((30, 30, 3), dtype=np.uint8)
    out = with_boxes(image, predicted=(5, 5, 20, 20), ground_truth=[(5, 5, 25, 25), (0, 0, 3, 3)])
    assert tuple(out[5, 5]) == GREEN  # shared corner: the prediction wins
    assert tuple(out[25, 25]) == RED and tuple(out[0, 0]) == RED
