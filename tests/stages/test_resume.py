"""Kill -9 during training, rerun the same command: it resumes from last.ckpt and finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spol.models import MFFNet, load_exported_model

TESTS = Path(__file__).parents[1]  # tiny.py, for the scripts these tests start

SCRIPT = """
import sys
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from tiny import TINY, make_dataset
from spol.config import load_recipe
from spol.stages import train_cam

torch.set_num_threads(1)
out = Path(sys.argv[1])
recipe = load_recipe("cpu", list(TINY) + ["cam.epochs=3", "cam.batch_size=2"])
train_cam(recipe, make_dataset(out / "data", num_images=8), out / "run")
"""


def _start(script: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )


@pytest.mark.slow
def test_sigkill_after_the_first_checkpoint_then_rerun_resumes(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)), encoding="utf-8")
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"

    process = _start(script, tmp_path)
    deadline = time.monotonic() + 120
    while not last.exists():
        if process.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint: {process.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint within 120 s")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (run / "model.pt").exists()

    rerun = _start(script, tmp_path)
    _, stderr = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, stderr.decode()[-3000:]
    log = (run / "train.log").read_text()
    assert log.count("training from scratch") == 1 and "resuming from" in log
    # The epoch counter continued: each of the three epochs finished exactly once.
    epochs = [line.split(",")[1] for line in (run / "metrics.csv").read_text().splitlines() if line.startswith("epoch")]
    assert epochs == ["0", "1", "2"]
    # The recipe keeps the newest two epoch checkpoints; the resumed run still knew epoch 0's and removed it.
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch-*.ckpt")) == ["epoch-001.ckpt", "epoch-002.ckpt"]
    assert isinstance(load_exported_model(run / "model.pt"), MFFNet)
