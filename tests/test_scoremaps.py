import cv2
import numpy as np

from spol.localization import mask_to_protocol_box
from spol.scoremaps import EMPTY_PROTOCOL_BOX, protocol_box


def test_protocol_box_is_bounding_rect_with_the_far_edge_clipped_to_the_last_pixel():
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 2:5] = 1  # pixels x 2..4, y 1..2
    assert cv2.boundingRect(mask) == (2, 1, 3, 2)
    assert protocol_box(2, 1, 3, 2, 8, 6) == (2, 1, 5, 3)  # x + w is one past the last pixel
    mask[:, 5:] = 1  # reaches the right border
    x, y, w, h = cv2.boundingRect(mask)
    assert protocol_box(x, y, w, h, 8, 6) == (2, 0, 7, 5)  # clipped to W - 1, H - 1


def test_an_empty_mask_counts_as_the_one_pixel_box_at_the_origin():
    assert mask_to_protocol_box(np.zeros((4, 4), bool)) == EMPTY_PROTOCOL_BOX == (0, 0, 0, 0)
