"""spol's built-in ImageNet localizer on real photographs, and "no object" on blank, uniform and noise images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from spol.evaluation import compute_iou
from spol.localization import DEFAULT_MIN_SCORE, IMAGENET_MODEL, Localizer, imagenet_class_names

torch.set_num_threads(2)

# Boxes drawn by hand around the object of each photograph, in its pixels (x0, y0, x1, y1).
PHOTOS = {
    "chelsea": ((0, 0, 420, 299), {"Egyptian cat", "tabby", "tiger cat"}),  # a cat's head and chest
    "coffee": ((75, 15, 480, 390), {"espresso", "cup", "coffee mug"}),  # cup and saucer
    "astronaut": ((20, 15, 505, 511), {"football helmet", "crash helmet"}),  # no ImageNet class for an astronaut
}
ROCKET = (295, 125, 345, 410)


@pytest.fixture(scope="module")
def imagenet() -> Localizer:
    return Localizer.imagenet(device="cpu")


def test_class_names_are_imagenets_first_names_made_unique() -> None:
    names = imagenet_class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[285] == "Egyptian cat"
    assert names[134] == "crane (n02012849)" and names[517] == "crane (n03126707)"  # the bird, the machine


@pytest.mark.parametrize("name", list(PHOTOS))
def test_real_photographs_get_a_sensible_class_and_a_box_on_the_object(imagenet: Localizer, name: str) -> None:
    truth, classes = PHOTOS[name]
    found = imagenet(getattr(data, name)())
    assert {label for label, _ in found.top5} & classes, found.top5
    assert found.localization_score > 0.9 and found.box is not None
    assert compute_iou([found.box], [truth])[0, 0] >= 0.6
    assert found.mask.any() and found.mask.shape == getattr(data, name)().shape[:2]


def test_the_rocket_is_named_among_the_top_five_and_inside_the_box(imagenet: Localizer) -> None:
    found = imagenet(data.rocket())
    assert {label for label, _ in found.top5} & {"missile", "projectile", "space shuttle"}, found.top5
    # Its top-1 is the launch pad ("drilling platform"), so the box spans the pad and holds the rocket.
    x0, y0, x1, y1 = found.box
    assert x0 <= ROCKET[0] and x1 >= ROCKET[2] and y0 <= (ROCKET[1] + ROCKET[3]) / 2 <= y1


def test_blank_uniform_and_noise_images_give_no_object(imagenet: Localizer) -> None:
    rng = np.random.default_rng(0)
    images = [
        np.zeros((300, 400, 3), np.uint8),
        np.full((300, 400, 3), 255, np.uint8),
        np.full((240, 320, 3), 128, np.uint8),
        rng.integers(0, 256, (300, 400, 3)).astype(np.uint8),
    ]
    for image, found in zip(images, imagenet.localize_batch(images), strict=True):
        assert found.mask.shape == image.shape[:2]
        assert found.localization_score < DEFAULT_MIN_SCORE
        assert found.box is None and found.protocol_box is None and not found.mask.any()
        assert found.to_json()["box"] is None
    # A lower bar than the default lets the noise image through: the score is what is filtered on.
    permissive = Localizer.imagenet(device="cpu", min_score=0.0)
    assert permissive(images[3]).box is not None


def test_it_says_what_it_is(imagenet: Localizer) -> None:
    assert imagenet.description == IMAGENET_MODEL and "EfficientNet-Lite0" in IMAGENET_MODEL
    assert imagenet.kind == "cam" and imagenet.map_network is imagenet.classifier
    assert (imagenet.threshold, imagenet.threshold_rule) == (0.2, "protocol")
