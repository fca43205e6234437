"""`spol pipeline` under 2-process DDP on CPU (gloo): sharded pseudo masks and evaluation, one writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import TINY_PIPELINE

from spol.config import load_recipe
from spol.data import SyntheticConfig, generate_synthetic
from spol.evaluation import NpyScoreMaps, StreamingEvaluator
from spol.pipeline import prepare_dataset

OVERRIDES = (
    *TINY_PIPELINE,
    "pseudo_masks.batch_size=4",
    "evaluation.batch_size=4",
    "evaluation.workers=1",
    "trainer.devices=2",
    "trainer.strategy=ddp",
)
METHOD_KEYS = {
    "top1_loc", "top5_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "pxap", "cls_top1", "threshold", "train",
    "threshold_rule", "threshold_from",
}


def _pipeline(data: Path, run: Path) -> subprocess.CompletedProcess[str]:
    spol = Path(sys.executable).with_name("spol")
    args = [str(spol), "pipeline", "--recipe", "cpu", "--data", str(data), "--format", "cub", "--out", str(run)]
    args += [arg for override in OVERRIDES for arg in ("--set", override)] + ["--save-scoremaps"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for name in ("LOCAL_RANK", "RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run(args, capture_output=True, text=True, timeout=400, env=env, cwd=run.parent)


def _box_numbers(summary: dict) -> dict:
    return {key: summary[key] for key in ("gt_known_loc", "max_box_acc", "max_box_acc_v2", "pxap", "threshold")}


@pytest.mark.slow
def test_pipeline_under_two_process_ddp_shards_the_work_and_writes_once(tmp_path):
    data = generate_synthetic(
        tmp_path / "data",
        SyntheticConfig(num_classes=3, train_per_class=10, test_per_class=5, image_size=(64, 64), seed=2),
        progress=False,
        workers=1,
    )
    run = tmp_path / "run"
    result = _pipeline(data, run)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Starting with 2 processes" in (run / "cam" / "train.log").read_text()
    assert result.stdout.count("GT-known Loc") == 1  # the table is printed by rank 0 only

    recipe = load_recipe("cpu", OVERRIDES)
    dataset, _ = prepare_dataset(data, "cub", recipe)
    train, val, test = dataset.split("train"), dataset.split("val"), dataset.split("test")
    # Each training image got its pseudo mask from one rank: the ranks' counts add up to the split.
    report = json.loads((run / "pseudo_masks" / "report.json").read_text())
    assert (report["total"], report["written"], report["failed"]) == (len(train), len(train), 0)
    assert len(list((run / "pseudo_masks").rglob("*.png"))) == len(train)

    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"spol", "mffcam", "cam"} and all(set(m) == METHOD_KEYS for m in metrics.values())
    # The counts summed over the ranks equal one process evaluating every saved map.
    for method in ("spol", "mffcam", "cam"):
        chosen = {}
        for split, records in (("val", val), ("test", test)):
            maps = NpyScoreMaps(run / "scoremaps" / method / split)
            assert len(list(maps.root.rglob("*.npy"))) == len(records)
            evaluator = StreamingEvaluator(masks=split == "test", workers=0)
            evaluator.add(records, np.stack([maps(r.image_id) for r in records]))
            chosen[split] = evaluator.finish()
        recounted = chosen["test"].result(chosen["val"].best_threshold()).to_metrics()
        assert _box_numbers(recounted) == _box_numbers(metrics[method])

    # A rerun finds every stage done and gives the same metrics.
    before = (run / "metrics.json").read_bytes()
    again = _pipeline(data, run)
    assert again.returncode == 0, again.stderr[-4000:]
    assert (run / "metrics.json").read_bytes() == before
    assert json.loads((run / "pseudo_masks" / "report.json").read_text())["skipped_existing"] == len(train)
