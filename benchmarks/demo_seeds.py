"""SPOL against vanilla CAM on the demo benchmark over several training seeds, plus robustness rows.

Each row runs the whole pipeline (CPU recipe) into its own folder and reads its metrics.json;
the summary gives the mean and the spread (sample standard deviation) over the seeds. Rows:

- ``demo``: the `spol demo` data (160 px, objects 10-45% of the image), training seeds 0, 1, 2.
- ``robust``: the ``robust`` synthetic preset (192-256 px images of varied size, objects 5-25%),
  the same recipe, evaluated the same way; one seed unless ``--robust-seeds`` says more.

    .venv/bin/python benchmarks/demo_seeds.py --out runs/bench [--seeds 0 1 2] [--robust-seeds 0]

Folders that already hold a finished run are reused (the pipeline skips finished stages).
About 10 minutes per run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from spol.config import load_recipe
from spol.data import SYNTHETIC_PRESETS, generate_synthetic
from spol.pipeline import run_pipeline
from spol.pipeline.demo import DEMO_DATA

KEYS = (("GT-known Loc", "gt_known_loc"), ("MaxBoxAccV2", "max_box_acc_v2"), ("Top-1 Loc", "top1_loc"), ("PxAP", "pxap"))


def _data(root: Path, name: str, config) -> Path:  # type: ignore[no-untyped-def]
    folder = root / f"data-{name}"
    if not (folder / "synthetic_config.json").exists():
        generate_synthetic(folder, config, force=True)
    return folder


def _run(data: Path, out: Path, seed: int) -> dict:
    start = time.perf_counter()
    result = run_pipeline(load_recipe("cpu", (f"seed={seed}",)), data, "cub", out)
    print(f"{out.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return result.metrics


def _summarise(name: str, runs: list[dict]) -> None:
    print(f"\n{name}: {len(runs)} seed(s)")
    print(f"{'metric':<14}{'SPOL':>16}{'CAM':>16}{'SPOL - CAM':>16}")
    for label, key in KEYS:
        spol = [r["spol"][key] for r in runs]
        cam = [r["cam"][key] for r in runs]
        diff = [a - b for a, b in zip(spol, cam)]

        def cell(values: list[float]) -> str:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):7.2f} ± {spread:5.2f}"

        print(f"{label:<14}{cell(spol):>16}{cell(cam):>16}{cell(diff):>16}")
    print("per seed (GT-known SPOL / CAM): " + ", ".join(f"{r['spol']['gt_known_loc']:.1f}/{r['cam']['gt_known_loc']:.1f}" for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for the data and the runs")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="training seeds of the demo rows")
    parser.add_argument("--robust-seeds", type=int, nargs="*", default=[0], help="training seeds of the robust rows")
    args = parser.parse_args()
    demo_data = _data(args.out, "demo", DEMO_DATA)
    demo = [_run(demo_data, args.out / f"demo-seed{seed}", seed) for seed in args.seeds]
    robust = []
    if args.robust_seeds:
        robust_data = _data(args.out, "robust", SYNTHETIC_PRESETS["robust"])
        robust = [_run(robust_data, args.out / f"robust-seed{seed}", seed) for seed in args.robust_seeds]
    if demo:
        _summarise("demo (160 px, objects 10-45%)", demo)
    if robust:
        _summarise("robust (192-256 px, objects 5-25%)", robust)
    (args.out / "summary.json").write_text(json.dumps({"demo": demo, "robust": robust}, indent=2))


if __name__ == "__main__":
    main()
