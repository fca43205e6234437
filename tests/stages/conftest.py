"""Tiny generated datasets and a fast recipe for the training-stage tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spol.config import Recipe, load_recipe
from spol.data import Dataset, ImageRecord

FAST_OVERRIDES = (
    "weights=null",
    "data.resize=64",
    "data.crop=56",
    "data.num_workers=0",
    "cam.epochs=1",
    "baseline.epochs=1",
    "cam.min_steps=null",
    "baseline.min_steps=null",
    "seg.min_steps=null",
    "cam.batch_size=4",
    "baseline.batch_size=4",
    "seg.epochs=1",
    "seg.batch_size=4",
    "classifier.enabled=true",
    "classifier.weights=null",
    "classifier.epochs=1",
    "classifier.batch_size=4",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.log_every_n_steps=1",
)


def make_dataset(root: Path, *, num_images: int = 8, num_classes: int = 2, size: int = 64) -> Dataset:
    """`num_images` random-noise images with a bright square whose colour is the class; boxes = the square."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(num_images):
        label = index % num_classes
        image = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
        x0, y0 = (int(v) for v in rng.integers(4, size // 2, size=2))
        side = size // 3
        image[y0 : y0 + side, x0 : x0 + side, label % 3] = 250
        path = root / f"img{index}.png"
        Image.fromarray(image).save(path)
        box = (float(x0), float(y0), float(x0 + side), float(y0 + side))
        records.append(ImageRecord(f"img{index}.png", path, label, "train", (box,), (size, size)))
    return Dataset("csv", root, [f"class{c}" for c in range(num_classes)], records)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "data")


@pytest.fixture
def fast_recipe() -> Recipe:
    return load_recipe("cpu", FAST_OVERRIDES)


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(2)
