"""DDP over two CPU processes (gloo): both ranks end with identical weights and rank 0 exports them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from spol.models import load_exported_model

TESTS = Path(__file__).parents[1]  # tiny.py, for the scripts these tests start

# Lightning's "ddp" strategy re-runs this script for rank 1 (LOCAL_RANK=1), so it must not fork pytest.
SCRIPT = """
import os, sys
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from tiny import TINY, make_dataset
from spol.config import load_recipe
from spol.data.loaders import ImageLabelDataset
from spol.data.transforms import train_transform
from spol.models import build_mffnet_cam, export_model
from spol.stages import CamSystem
from spol.runtime.engine import fit_stage, seed_everything

torch.set_num_threads(1)
out = Path(sys.argv[1])
# Count the all-reduces Python code asks for on the training devices (DDP's gradient buckets reduce in C++, not
# through this; the stop-signal vote after each step reduces on a separate CPU group).
import torch.distributed as dist
all_reduces = [0]
reduce = dist.all_reduce
def counted(*args, **kwargs):
    all_reduces[0] += kwargs.get("group") is None
    return reduce(*args, **kwargs)
dist.all_reduce = counted
recipe = load_recipe("cpu", list(TINY) + [
    "trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "cam.batch_size=4", "cam.epochs=1",
    "cam.max_steps=3", "data.resize=48", "data.crop=40"] + sys.argv[2:])
dataset = make_dataset(out / "data", num_images=12, size=48)
seed_everything(recipe.seed)
kwargs = {{"backbone": recipe.backbone, "num_classes": dataset.num_classes, "aux_branch": True}}
net = build_mffnet_cam(**kwargs, weights=None)
images = ImageLabelDataset(dataset.records, train_transform(resize=48, crop=40, normalization=net.normalization))
from spol.runtime.interrupt import Interrupted, stop_on_signals
try:
    with stop_on_signals():  # as the spol command does
        fit_stage(CamSystem(net, recipe.cam), images, recipe=recipe, stage=recipe.cam, section_name="cam",
                  run_dir=out / "run",
                  export=lambda model, path: export_model(model, builder="mffnet_cam", kwargs=kwargs, path=path))
except Interrupted as stop:
    sys.exit(stop.exit_code)
rank = int(os.environ.get("LOCAL_RANK", "0"))
torch.save({{k: v for k, v in net.named_parameters()}}, out / f"rank{{rank}}.pt")
(out / f"rank{{rank}}_all_reduces.txt").write_text(str(all_reduces[0]))
"""


def _start(tmp_path: Path, *overrides: str) -> subprocess.Popen[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,  # rank 1, which Lightning starts, in the same session
    )


def _train(tmp_path: Path, *overrides: str) -> None:
    process = _start(tmp_path, *overrides)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-4000:]


# 12 images in global batches of 4: 3 steps an epoch whatever the number of processes, so min_steps 7 needs 3
# epochs (9 steps). Each process's loader yields 3 batches of 2 (it sees 12 images before Lightning shards them,
# 6 after): counting the unsharded loader gave 6 steps an epoch, 2 epochs, 6 steps.
STRAIGHT = ("cam.max_steps=null", "cam.min_steps=7", "data.num_workers=1")


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted 2-process run of `STRAIGHT`, read by the tests below (none may change it)."""
    root = tmp_path_factory.mktemp("ddp-straight")
    _train(root, *STRAIGHT)
    return root


@pytest.mark.slow
def test_two_process_ddp_on_cpu_keeps_the_ranks_identical(straight: Path) -> None:
    rank0 = torch.load(straight / "rank0.pt")
    rank1 = torch.load(straight / "rank1.pt")
    assert rank0.keys() == rank1.keys() and len(rank0) > 0
    for name, value in rank0.items():
        torch.testing.assert_close(rank1[name], value, rtol=0, atol=0, msg=name)
    log = (straight / "run" / "train.log").read_text()
    assert "Starting with 2 processes" in log
    # Each rank trained on its own half of every global batch of 4.
    assert "global batch 4 (2 per device on 2 device(s))" in log
    rows = [line for line in (straight / "run" / "metrics.csv").read_text().splitlines() if line.startswith("step")]
    assert [row.split(",")[2] for row in rows] == [str(step) for step in range(1, 10)]
    exported = load_exported_model(straight / "run" / "model.pt").state_dict()
    for name, value in rank0.items():
        torch.testing.assert_close(exported[name], value.detach(), rtol=0, atol=0, msg=name)
    # Logging reduces over the ranks once an epoch (the loss and accuracy), not at every one of the 9 steps.
    all_reduces = [int((straight / f"rank{rank}_all_reduces.txt").read_text()) for rank in (0, 1)]
    assert all_reduces[0] == all_reduces[1] <= 6  # 18 when each step reduced its loss and accuracy
    # The checkpoint holds each rank's random generators, so that a resumed run restores every rank's own.
    checkpoint = torch.load(straight / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert isinstance(checkpoint["spol_rng_states"], list) and len(checkpoint["spol_rng_states"]) == 2


@pytest.mark.slow
def test_min_steps_under_two_processes_trains_as_many_steps_as_one_process(straight: Path) -> None:
    log = (straight / "run" / "train.log").read_text()
    assert "3 epochs (raised from 1 to reach min_steps 7)" in log
    assert "finished at epoch 3, step 9" in log


@pytest.mark.slow
def test_sigterm_to_rank_0_stops_both_ranks_at_one_step_and_the_rerun_ends_as_an_uninterrupted_run(
    straight: Path, tmp_path: Path, processes_left: Callable[[int], list[int]]
) -> None:
    # Lightning's launcher started rank 1; spol passes the signal on and the ranks agree after a step on stopping
    # (a rank stopping alone hangs the other). The first checkpoint comes after epoch 1 of 3.
    process = _start(tmp_path, *STRAIGHT)
    deadline = time.monotonic() + 240
    while not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-4000:]  # type: ignore[union-attr]
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-4000:]
    assert processes_left(process.pid) == [], "rank 1 still runs"
    assert not (tmp_path / "run" / "model.pt").exists()

    _train(tmp_path, *STRAIGHT)
    assert "resuming from" in (tmp_path / "run" / "train.log").read_text()
    for rank in (0, 1):
        expected = torch.load(straight / f"rank{rank}.pt")
        resumed = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in expected.items():
            assert torch.equal(resumed[name], value), (rank, name)


@pytest.mark.slow
def test_a_diverged_loss_stops_both_processes(tmp_path: Path) -> None:
    # The ranks vote on their losses every log_every_n_steps batches: both stop at one step, none waits for the other.
    process = _start(tmp_path, "cam.lr=1e30")
    _, stderr = process.communicate(timeout=240)
    assert process.returncode != 0
    assert "the cam stage diverged: the loss became NaN, infinite or above 10000 by step 2 (epoch 1)" in stderr
    assert not (tmp_path / "run" / "model.pt").exists() and not list(tmp_path.glob("run/checkpoints/*.ckpt"))
