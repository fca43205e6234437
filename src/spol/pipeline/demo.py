"""`spol demo`: the synthetic benchmark, the CPU recipe, SPOL against vanilla CAM."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from spol.config import load_recipe
from spol.data.synthetic import SYNTHETIC_PRESETS, SyntheticConfig, generate_synthetic
from spol.pipeline.run import PipelineResult, run_pipeline
from spol.rundir import PIPELINE_OUTPUTS, claim_folder

DEMO_DATA = SYNTHETIC_PRESETS["demo"]
"""1500 training images (of which the pipeline holds out a validation share) and 500 test images, seed 0."""

QUICK_DATA = SyntheticConfig(num_classes=4, train_per_class=20, test_per_class=10, seed=0)
"""A smoke-test size: the whole pipeline in about 30 s on 2 CPU cores, numbers not meaningful."""

QUICK_OVERRIDES = (
    "cam.epochs=1",
    "baseline.epochs=1",
    "seg.epochs=1",
    "cam.min_steps=null",
    "baseline.min_steps=null",
    "seg.min_steps=null",
)
"""Recipe overrides of `spol demo --quick`."""


def run_demo(out_dir: str | Path = "runs/demo", *, quick: bool = False, force: bool = False) -> PipelineResult:
    """Make the synthetic benchmark in ``OUT/data`` and run the CPU recipe's pipeline into ``OUT``.

    Args:
        out_dir: run folder; ``OUT/metrics.json`` and ``OUT/report.html`` come out of it.
        quick: a smaller benchmark and fewer training steps (smoke test).
        force: regenerate the data and redo every stage.
    """
    out_dir = Path(out_dir)
    # Before the data goes in: a folder of the user's is refused, not filled (demo has no --overwrite-foreign).
    claim_folder(out_dir, replace(PIPELINE_OUTPUTS, override=None))
    # The same benchmark already there is reused; an interrupted generation is completed.
    generate_synthetic(out_dir / "data", QUICK_DATA if quick else DEMO_DATA, force=force)
    recipe = load_recipe("cpu", QUICK_OVERRIDES if quick else ())
    return run_pipeline(recipe, out_dir / "data", "cub", out_dir, force=force, recipe_name="cpu", smoke_test=quick)
