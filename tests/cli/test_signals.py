"""SIGTERM / SIGINT to a running `spol` command: exit 143 / 130 with spol's own line, no process left
behind, and a rerun that finishes with the files of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tiny import torch_threads
from typer.testing import CliRunner

from spol.cli._app import app
from spol.data import SyntheticConfig, generate_synthetic

SPOL = [sys.executable, "-c", "import sys; from spol.cli import main; sys.argv[0] = 'spol'; main()"]

# Three CAM epochs (4 steps each) leave time to stop after the first checkpoint; loader workers that must end
# with the command; pseudo masks one image at a time, so that generation lasts long enough to be stopped.
TINY = [
    f"--set={setting}"
    for setting in (
        "weights=null", "data.resize=64", "data.crop=56", "data.num_workers=2", "data.val_share=0.25",
        "cam.epochs=3", "cam.batch_size=4", "cam.min_steps=null", "baseline.epochs=1", "baseline.batch_size=8",
        "baseline.min_steps=null", "seg.epochs=1", "seg.batch_size=8", "seg.min_steps=null",
        "pseudo_masks.resize=128", "pseudo_masks.batch_size=1", "evaluation.input_size=64", "evaluation.batch_size=8",
    )
]


def _start(*args: str) -> subprocess.Popen[str]:
    # Its own session: the test can tell whether any of its processes (loader workers, writers) outlive it.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*SPOL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    process = _start(*args)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return subprocess.CompletedProcess(args, 0, stdout, stderr)


def _run_here(*args: str) -> str:
    """A reference run in the test's own process, on the one torch thread the stopped commands have; its stdout."""
    with torch_threads(1):
        result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output[-3000:]
    return result.stdout


def _pipeline(data: Path, out: Path) -> list[str]:
    return ["pipeline", "--data", str(data), "--format", "cub", "--out", str(out), "--recipe", "cpu", *TINY]


def _signal_when(process: subprocess.Popen[str], ready: Callable[[], bool], signum: int) -> str:
    """Send `signum` once `ready()`; return the command's stderr once it has ended."""
    deadline = time.monotonic() + 300
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the command ended before the moment to stop it: {process.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the moment to stop the command did not come within 300 s")
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return stderr


def _assert_stopped(process: subprocess.Popen[str], stderr: str, signum: int, left: list[int]) -> None:
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"stopped by {name}" in stderr and "rerun the same command to resume" in stderr, stderr[-3000:]
    assert "KeyboardInterrupt" not in stderr and "Received SIGTERM" not in stderr
    assert left == [], "processes of the stopped command still run"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("signals")
    config = SyntheticConfig(num_classes=3, train_per_class=8, test_per_class=4, image_size=(64, 64), seed=3)
    data = generate_synthetic(root / "data", config, progress=False, workers=1)
    _run_here(*_pipeline(data, root / "run"))
    return data, root / "run"


@pytest.mark.slow
def test_sigterm_during_cam_training_then_during_pseudo_masks_stops_with_143_and_the_rerun_ends_as_an_uninterrupted_run(
    uninterrupted: tuple[Path, Path], tmp_path: Path, processes_left: Callable[[int], list[int]]
) -> None:
    data, reference = uninterrupted
    run = tmp_path / "run"
    # Stopped during CAM training, after its first checkpoint.
    process = _start(*_pipeline(data, run))
    stderr = _signal_when(process, (run / "cam" / "checkpoints" / "last.ckpt").exists, signal.SIGTERM)
    _assert_stopped(process, stderr, signal.SIGTERM, processes_left(process.pid))
    assert "rerunning resumes from" in stderr and not (run / "cam" / "model.pt").exists()

    # The rerun resumes the CAM network, and is stopped in its turn while it writes pseudo masks.
    process = _start(*_pipeline(data, run))
    stderr = _signal_when(process, lambda: any((run / "pseudo_masks").rglob("*.png")), signal.SIGTERM)
    _assert_stopped(process, stderr, signal.SIGTERM, processes_left(process.pid))
    assert "resuming from" in (run / "cam" / "train.log").read_text()
    written = len(list((run / "pseudo_masks").rglob("*.png")))
    assert not (run / "pseudo_masks" / "report.json").exists() and 0 < written < 18, written
    assert not list((run / "pseudo_masks").rglob("*.tmp"))

    _run(*_pipeline(data, run))
    assert (run / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()


@pytest.mark.slow
def test_sigint_stops_spol_pseudo_masks_and_its_writer_processes_and_the_rerun_completes(
    uninterrupted: tuple[Path, Path], tmp_path: Path, processes_left: Callable[[int], list[int]]
) -> None:
    data, reference = uninterrupted

    def command(out: Path, workers: int) -> list[str]:
        return ["pseudo-masks", "--data", str(data), "--format", "cub", "--cam", str(reference / "cam"),
                "--out", str(out), "--device", "cpu", "--batch-size", "1", "--workers", str(workers)]

    # The reference, written in this process with no writer processes: writers write the same bytes
    # (tests/stages/test_pseudo_masks.py).
    _run_here(*command(tmp_path / "straight", 0))
    masks = tmp_path / "masks"
    process = _start(*command(masks, 1))
    stderr = _signal_when(process, lambda: any(masks.rglob("*.png")), signal.SIGINT)
    _assert_stopped(process, stderr, signal.SIGINT, processes_left(process.pid))
    assert not (masks / "report.json").exists()

    rerun = _run_here(*command(masks, 0))
    assert '"skipped_existing": 0' not in rerun  # it resumed: the masks written before the stop are kept
    expected = {p.relative_to(tmp_path / "straight"): p.read_bytes() for p in (tmp_path / "straight").rglob("*.png")}
    assert {p.relative_to(masks): p.read_bytes() for p in masks.rglob("*.png")} == expected
