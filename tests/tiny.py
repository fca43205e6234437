"""The tiny recipe and data every test trains on: a few 64-pixel images, one short epoch per stage, one CPU.

Importable from test modules (pytest's ``pythonpath`` holds ``tests/``) and from the scripts that DDP
and torchrun tests start (they put ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spol.data import Dataset, ImageRecord, SyntheticConfig, generate_synthetic

_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # not on macOS
TORCH_THREADS = max(1, _CORES // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
"""Torch threads for a test that may use every core it has: its share of the cores under pytest-xdist."""


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """The block on `count` torch threads, then the count as it was.

    Float sums over another thread count differ in their last digits: a run compared byte for byte with a
    command started with ``OMP_NUM_THREADS=1`` must use one thread too.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


TINY: tuple[str, ...] = (
    "weights=null",
    "data.resize=64",
    "data.crop=56",
    "data.num_workers=0",
    "cam.epochs=1",
    "baseline.epochs=1",
    "seg.epochs=1",
    "cam.min_steps=null",
    "baseline.min_steps=null",
    "seg.min_steps=null",
    "cam.batch_size=4",
    "baseline.batch_size=4",
    "seg.batch_size=4",
    "classifier.enabled=true",
    "classifier.weights=null",
    "classifier.epochs=1",
    "classifier.batch_size=4",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.log_every_n_steps=1",
)
"""The ``cpu`` recipe shrunk for tests of single stages (train-cam, pseudo masks, train-seg, classifier)."""

TINY_PIPELINE: tuple[str, ...] = (
    *TINY,
    "classifier.enabled=false",
    "data.val_share=0.25",
    "cam.batch_size=8",
    "baseline.batch_size=8",
    "seg.batch_size=8",
    "pseudo_masks.resize=64",
    "pseudo_masks.batch_size=8",
    "evaluation.input_size=64",
    "evaluation.batch_size=8",
)
"""`TINY` for whole pipelines: the CAM network's logits classify, batches of 8, 64-pixel evaluation."""


def as_cli_options(overrides: tuple[str, ...]) -> list[str]:
    """``--set key=value`` pairs of `overrides`, for the command line."""
    return [arg for override in overrides for arg in ("--set", override)]


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


def tiny_synthetic(root: Path, *, seed: int = 3) -> Path:
    """The finished pipeline's data: 3 classes x (8 train + 4 test) generated 64-pixel images, CUB layout."""
    config = SyntheticConfig(num_classes=3, train_per_class=8, test_per_class=4, image_size=(64, 64), seed=seed)
    return generate_synthetic(root, config, progress=False, workers=1)
