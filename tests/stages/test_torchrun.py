"""Under torchrun every process starts at once: ranks must wait for each other's files from the first line.

Each test slows rank 0 down where the race was (its export of an epochs-0 classifier, its removal of
a stage's checkpoints for --force), so that without the fix the other rank reads too early, every time.
One torchrun launch (`FIRST`) runs the three first steps, each in its own folder; the tests read its files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]  # tiny.py, for the scripts these tests start

PRELUDE = """
import os, pickle, sys, time
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from tiny import TINY, make_dataset
from spol.config import load_recipe

torch.set_num_threads(1)
out = Path(sys.argv[1])
rank = int(os.environ["RANK"])


def shared_dataset(name, num_images, prepare=None):
    # Rank 0 writes the images (then runs `prepare`); the other ranks wait for them, never rewrite them.
    ready = out / name / "dataset.pkl"
    if rank == 0 and not ready.exists():
        dataset = make_dataset(out / name / "data", num_images=num_images)
        if prepare is not None:
            prepare(dataset)
        partial = out / "dataset.pkl.partial"
        partial.write_bytes(pickle.dumps(dataset))
        partial.replace(ready)
    while not ready.exists():
        time.sleep(0.05)
    return pickle.loads(ready.read_bytes())


def slow_on_rank_zero(function):
    def slowed(*args, **kwargs):
        if rank == 0:
            time.sleep(3)
        return function(*args, **kwargs)
    return slowed
"""

CLASSIFIER_STEP = """
import spol.stages.classifier as classifier_stage
from spol.models import load_exported_model
import timm

weights = out / "classifier" / "classifier.pth"
dataset = shared_dataset("classifier", 8, lambda _: torch.save(
    timm.create_model("tf_efficientnet_lite0", num_classes=2).state_dict(), weights))
recipe = load_recipe("cpu", list(TINY) + [
    "trainer.strategy=ddp", "trainer.devices=2", "classifier.epochs=0", "classifier.backbone=efficientnet_lite0",
    f"classifier.weights={{weights}}"])
export_model = classifier_stage.export_model
classifier_stage.export_model = slow_on_rank_zero(export_model)
path = classifier_stage.train_classifier(recipe, dataset, out / "classifier" / "run")
classifier_stage.export_model = export_model
load_exported_model(path)  # every rank reads what rank 0 wrote
print(f"rank {{rank}} loaded {{path}}")
"""

FORCE_STEP = """
import spol.runtime.engine as engine
from spol.stages.cam import train_cam

dataset = shared_dataset("force", 8)
recipe = load_recipe("cpu", list(TINY) + ["trainer.strategy=ddp", "trainer.devices=2", "cam.epochs=2"])
force = sys.argv[2:] == ["--force"]
if force:
    engine.clear_stage_outputs = slow_on_rank_zero(engine.clear_stage_outputs)
print(f"rank {{rank}} wrote", train_cam(recipe, dataset, out / "force" / "cam", force=force))
"""

def _torchrun(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"script{len(list(tmp_path.glob('script*.py')))}.py"
    path.write_text(script.format(tests=str(TESTS)), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for name in ("LOCAL_RANK", "RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(path)]
    return subprocess.run([*command, str(tmp_path), *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One torchrun launch of `FIRST`: its folder and its result."""
    root = tmp_path_factory.mktemp("torchrun")
    return root, _torchrun(FIRST, root)


@pytest.mark.slow
def test_an_epochs_zero_classifier_is_read_by_every_rank_after_rank_zero_wrote_it(
    first: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, result = first
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 loaded" in result.stdout and "rank 1 loaded" in result.stdout


@pytest.mark.slow
def test_force_under_torchrun_retrains_on_every_rank(first: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, result = first
    assert result.returncode == 0, result.stderr[-3000:]
    model = root / "force" / "cam" / "model.pt"
    before = model.stat().st_mtime_ns
    assert (root / "force" / "cam" / "checkpoints" / "last.ckpt").is_file()
    again = _torchrun(PRELUDE + FORCE_STEP, root, "--force")
    assert again.returncode == 0, again.stderr[-3000:]
    assert model.stat().st_mtime_ns > before
    log = (root / "force" / "cam" / "train.log").read_text()
    assert "force: removing the previous outputs" in log and log.count("training from scratch") == 2


VERIFY_STEP = """
import json
import spol.pipeline.run as pipeline_run
from spol.pipeline.run import drop_unreadable_images
from spol.runtime.distributed import ensure_process_group

dataset = shared_dataset("verify", 9, lambda dataset: dataset.records[4].path.write_bytes(b"not an image"))
ensure_process_group("cpu")
checked = []
verify = pipeline_run.verify_images
def counting(paths, **kwargs):
    checked.extend(str(path) for path in paths)
    return verify(paths, **kwargs)
pipeline_run.verify_images = counting
recipe = load_recipe("cpu", list(TINY))
kept, notes = drop_unreadable_images(dataset, recipe, record=out / "verify" / f"run{{rank}}.json", fingerprint={{
    "index_sha256": "i", "content_sha256": "c"}}, progress=False)
pipeline_run.verify_images = verify
(out / "verify" / f"rank{{rank}}.json").write_text(
    json.dumps({{"checked": checked, "kept": len(kept.records), "notes": notes}}))
"""

FIRST = PRELUDE + VERIFY_STEP + CLASSIFIER_STEP + FORCE_STEP


@pytest.mark.slow
def test_each_rank_decodes_its_share_of_the_images_and_all_learn_every_failure(
    first: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    import json

    root, result = first
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((root / "verify" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(r["checked"]) for r in ranks] == [5, 4]  # images 0, 2, 4, 6, 8 and 1, 3, 5, 7
    assert not set(ranks[0]["checked"]) & set(ranks[1]["checked"])
    # Image 4 failed on rank 0; both ranks leave it out and say so.
    assert [r["kept"] for r in ranks] == [8, 8]
    assert all("img4.png" in r["notes"][0] for r in ranks)
