"""Kill -9 or SIGTERM during training, rerun the same command: it resumes from last.ckpt and finishes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from tiny import TINY, make_dataset, torch_threads

from spol.config import Recipe, load_recipe
from spol.data import Dataset
from spol.models import MFFNet, load_exported_model
from spol.runtime.interrupt import Interrupted, stop_on_signals
from spol.stages import train_cam

TESTS = Path(__file__).parents[1]  # tiny.py, for the scripts these tests start

RECIPE = ["cam.epochs=3", "cam.batch_size=2"]
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
recipe = load_recipe("cpu", list(TINY) + {recipe!r})
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
    script.write_text(SCRIPT.format(tests=str(TESTS), recipe=RECIPE), encoding="utf-8")
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

    # The rerun: what the script runs, in this process (its start would cost seconds of imports).
    with torch_threads(1):
        train_cam(load_recipe("cpu", [*TINY, *RECIPE]), make_dataset(tmp_path / "data", num_images=8), run)
    log = (run / "train.log").read_text()
    assert log.count("training from scratch") == 1 and "resuming from" in log
    # The epoch counter continued: each of the three epochs finished exactly once.
    epochs = [line.split(",")[1] for line in (run / "metrics.csv").read_text().splitlines() if line.startswith("epoch")]
    assert epochs == ["0", "1", "2"]
    # The recipe keeps the newest two epoch checkpoints; the resumed run still knew epoch 0's and removed it.
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch-*.ckpt")) == ["epoch-001.ckpt", "epoch-002.ckpt"]
    assert isinstance(load_exported_model(run / "model.pt"), MFFNet)


def _epoch_rows(run: Path) -> list[list[str]]:
    return [line.split(",")[1:3] for line in (run / "metrics.csv").read_text().splitlines() if line.startswith("epoch")]


@pytest.mark.slow
def test_sigterm_then_rerun_makes_the_steps_and_network_of_an_uninterrupted_run(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 images in batches of 2: 4 steps an epoch, max_steps 6 ends epoch 1 halfway. Loader workers: on resume
    # they draw their first batches before Lightning sets the epoch.
    recipe = tiny_recipe.model_copy(
        update={
            "cam": tiny_recipe.cam.model_copy(update={"epochs": 3, "batch_size": 2, "max_steps": 6}),
            "data": tiny_recipe.data.model_copy(update={"num_workers": 2}),
        }
    )
    data = tiny_dataset
    straight = load_exported_model(train_cam(recipe, data, tmp_path / "straight")).state_dict()
    assert _epoch_rows(tmp_path / "straight") == [["0", "4"], ["1", "6"]]

    save = ModelCheckpoint.on_train_epoch_end

    def save_then_sigterm(self: ModelCheckpoint, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        save(self, trainer, pl_module)
        if trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "run"
    monkeypatch.setattr(ModelCheckpoint, "on_train_epoch_end", save_then_sigterm)
    with stop_on_signals(), pytest.raises(Interrupted):
        train_cam(recipe, data, run)
    monkeypatch.undo()
    assert not (run / "model.pt").exists() and _epoch_rows(run) == [["0", "4"]]
    assert "stopped by SIGTERM at epoch 1, step 4; rerunning resumes from" in (run / "train.log").read_text()

    resumed = load_exported_model(train_cam(recipe, data, run)).state_dict()
    assert _epoch_rows(run) == [["0", "4"], ["1", "6"]]
    for name, value in straight.items():
        assert torch.equal(resumed[name], value), name
    # The resumed epoch is timed from its own start (it read "8 images in 9294 s, about 154m left").
    line = next(line for line in (run / "train.log").read_text().splitlines()[::-1] if "epoch 2/3" in line)
    seconds = float(re.search(r"4 images in (\d+) s", line).group(1))  # type: ignore[union-attr]
    assert seconds < 120, line
