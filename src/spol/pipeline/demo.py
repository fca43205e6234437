"""`spol demo`: the synthetic benchmark, the CPU recipe, SPOL against vanilla CAM."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from spol.config import load_recipe
from spol.data.synthetic import SyntheticConfig, generate_synthetic
from spol.pipeline.run import PipelineResult, run_pipeline

log = logging.getLogger(__name__)

DEMO_DATA = SyntheticConfig(num_classes=10, train_per_class=180, test_per_class=50, seed=0)
"""1800 training images (of which the pipeline holds out a validation share) and 500 test images."""

QUICK_DATA = SyntheticConfig(num_classes=4, train_per_class=40, test_per_class=10, seed=0)
"""A smoke-test size: the whole pipeline in a few minutes, numbers not meaningful."""

QUICK_OVERRIDES = (
    "cam.epochs=1",
    "baseline.epochs=1",
    "seg.epochs=1",
)
"""Recipe overrides of `spol demo --quick`."""


_GENERATED_NAMES = {
    "images",
    "segmentations",
    "classes.txt",
    "images.txt",
    "image_class_labels.txt",
    "bounding_boxes.txt",
    "train_test_split.txt",
}


def _prepare_data(data_dir: Path, config: SyntheticConfig, *, force: bool) -> None:
    """Generate the benchmark into `data_dir` unless the same one is already there."""
    stamp = data_dir / "synthetic_config.json"
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))
    if stamp.exists() and not force:
        if json.loads(stamp.read_text()) == wanted:
            log.info("synthetic benchmark found in %s; reusing it", data_dir)
            return
        raise FileExistsError(
            f"{data_dir} holds a synthetic benchmark made with other settings; "
            "pass --force to regenerate it, or choose another --out"
        )
    # A generation killed midway leaves only its own files and no stamp: finish it over them.
    # Anything else in the folder may be the user's, so it is refused without --force.
    interrupted = data_dir.is_dir() and all(
        entry.name in _GENERATED_NAMES or entry.name.startswith(".") for entry in data_dir.iterdir()
    )
    generate_synthetic(data_dir, config, force=force or interrupted)


def run_demo(out_dir: str | Path = "runs/demo", *, quick: bool = False, force: bool = False) -> PipelineResult:
    """Make the synthetic benchmark in ``OUT/data`` and run the CPU recipe's pipeline into ``OUT``.

    Args:
        out_dir: run folder; ``OUT/metrics.json`` and ``OUT/report.html`` come out of it.
        quick: a smaller benchmark and fewer training steps (smoke test).
        force: regenerate the data and redo every stage.
    """
    out_dir = Path(out_dir)
    _prepare_data(out_dir / "data", QUICK_DATA if quick else DEMO_DATA, force=force)
    recipe = load_recipe("cpu", QUICK_OVERRIDES if quick else ())
    return run_pipeline(recipe, out_dir / "data", "cub", out_dir, force=force)
