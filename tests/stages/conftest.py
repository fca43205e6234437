"""The training-stage tests: a tiny generated dataset per test, every core the test has (`tiny.TORCH_THREADS`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import TORCH_THREADS, make_dataset

from spol.data import Dataset


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "data")


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(TORCH_THREADS)
