"""Suite-wide fixtures: the tiny recipe, one finished tiny pipeline shared by every test that reads one,
tests marked ``cuda`` skipped where no GPU is present (CI has none), and the slow tests first."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tiny import TINY, TINY_PIPELINE, TORCH_THREADS, tiny_synthetic, torch_threads

from spol.config import Recipe, load_recipe
from spol.pipeline import PipelineResult, run_pipeline

if "PYTEST_XDIST_WORKER" in os.environ:
    # `make test` runs a pytest-xdist worker per core: each, and every command its tests start, gets its share of
    # the cores (`tiny.TORCH_THREADS`), so that two workers do not run four torch threads on two cores.
    os.environ["OMP_NUM_THREADS"] = str(TORCH_THREADS)
    torch.set_num_threads(TORCH_THREADS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The slow end-to-end files first: pytest-xdist hands out files in this order, and a long one handed out
    # last would keep one worker busy after the other has finished.
    items.sort(key=lambda item: "slow" not in item.keywords)
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA device (none visible)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(no_gpu)


@pytest.fixture
def tiny_recipe() -> Recipe:
    """The ``cpu`` recipe with `tiny.TINY`."""
    return load_recipe("cpu", TINY)


@dataclass(frozen=True)
class FinishedPipeline:
    """A `run_pipeline` that finished on `tiny_synthetic` data with `tiny.TINY_PIPELINE`: never change `run`."""

    recipe: Recipe
    data: Path
    run: Path
    result: PipelineResult

    def copy_run(self, folder: Path) -> Path:
        """A copy of the run folder at ``folder/run``, for a test that changes it."""
        shutil.copytree(self.run, folder / "run")
        return folder / "run"


@pytest.fixture(scope="session")
def finished_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedPipeline]:
    """The finished tiny pipeline, trained once for the whole session (one torch thread, 3 report samples)."""
    with torch_threads(1):
        root = tmp_path_factory.mktemp("finished_pipeline")
        data = tiny_synthetic(root / "data")
        recipe = load_recipe("cpu", TINY_PIPELINE)
        result = run_pipeline(recipe, data, "cub", root / "run", report_samples=3, progress=False)
    yield FinishedPipeline(recipe, data, root / "run", result)


def _running_in_session(session: int) -> list[int]:
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == session:  # state, ..., session id; zombies have ended
            running.append(int(stat.parent.name))
    return running


@pytest.fixture
def processes_left() -> Callable[[int], list[int]]:
    """``processes_left(session)``: the processes of a session that still run 10 s after its leader ended.

    Start a command with ``start_new_session=True`` and pass its pid: its loader workers, writer and DDP
    processes are in its session. Linux only (``/proc``); elsewhere always ``[]``.
    """

    def left(session: int) -> list[int]:
        if not Path("/proc/self/stat").exists():
            return []
        deadline = time.monotonic() + 10
        while _running_in_session(session) and time.monotonic() < deadline:
            time.sleep(0.1)
        return _running_in_session(session)

    return left
