"""Suite-wide: tests marked ``cuda`` run where a GPU is present and are skipped elsewhere (CI has none)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA device (none visible)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(no_gpu)


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
