"""Checkpoints are written beside their final name: a failed save leaves the previous one as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from spol.config import Recipe
from spol.data import Dataset
from spol.stages import train_cam

TESTS = Path(__file__).parents[1]  # tiny.py, for the script this test starts

# Resumes a 1-epoch run for a second epoch with files limited to `limit` bytes (a disk that fills up).
RESUME_SCRIPT = """
import resource, signal, sys
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from tiny import TINY, make_dataset
from spol.config import load_recipe
from spol.stages import train_cam
torch.set_num_threads(1)
out = Path(sys.argv[1])
dataset = make_dataset(out / "data")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
train_cam(load_recipe("cpu", list(TINY) + ["cam.epochs=2"]), dataset, out / "cam")
"""


def test_checkpoints_do_not_go_through_the_system_temp_folder(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A temp folder on another disk makes the final move a copy into last.ckpt; none is used at all.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-temp-folder"))
    run = tmp_path / "cam"
    train_cam(tiny_recipe, tiny_dataset, run)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2 and "state_dict" in checkpoint
    assert not list((run / "checkpoints").glob(".*.tmp"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_save_that_cannot_complete_leaves_the_previous_checkpoint(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    run = tmp_path / "cam"
    train_cam(tiny_recipe, tiny_dataset, run)  # epoch 1 of the script's run, in full
    (run / "model.pt").unlink()  # unfinished: the script resumes from last.ckpt
    last = run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(TESTS), limit=len(good) // 2), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode != 0
    assert "File too large" in done.stderr and str(run / "checkpoints") in done.stderr, done.stderr[-3000:]
    assert last.read_bytes() == good
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-000.ckpt", "last.ckpt"]
