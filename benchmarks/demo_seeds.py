"""SPOL, MFF-CAM and vanilla CAM over several training seeds, on the demo's data and other generated sets.

Each (dataset, seed) runs the whole pipeline with the CPU recipe as shipped into its own folder and
reads its metrics.json and selection.json; the summary gives the mean and the spread (sample standard
deviation) over the seeds, on test and on val, each method at the settings of the recipe (chosen on val
by ``recipe_search.py``). Datasets are those of ``recipe_search.py``: ``demo`` (the `spol demo` data),
``robust`` (its robust preset), ``few15``, ``large15`` and ``parts15``.

    .venv/bin/python benchmarks/demo_seeds.py --out runs/bench --datasets demo few15 --seeds 0 1 2 3 4

Folders that already hold a finished run are reused (the pipeline skips finished stages, then scores the
maps again); ``--summary-only`` reads their metrics.json and selection.json and trains and scores nothing.
About 6 minutes a run on 2 CPU cores with nothing else running, 5-6 for the other datasets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from recipe_search import DATASETS

from spol.config import load_recipe
from spol.data import generate_synthetic
from spol.pipeline import run_pipeline
from spol.rundir import METRICS_FILE, SELECTION_FILE

KEYS = (("GT-known Loc", "gt_known_loc"), ("MaxBoxAccV2", "max_box_acc_v2"), ("Top-1 Loc", "top1_loc"), ("PxAP", "pxap"))
METHODS = (("SPOL", "spol"), ("MFF-CAM", "mffcam"), ("CAM", "cam"))


def _data(root: Path, name: str) -> Path:
    folder = root / "data" / name  # as recipe_search.py: the two share generated data under one --out
    if not (folder / "synthetic_config.json").exists():
        generate_synthetic(folder, DATASETS[name], progress=False)
    return folder


def _run(data: Path, out: Path, seed: int, extra: list[str]) -> dict:
    start = time.perf_counter()
    run_pipeline(load_recipe("cpu", (f"seed={seed}", *extra)), data, "cub", out)
    print(f"{out.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return _finished(out)


def _finished(out: Path) -> dict:
    """A finished run's test metrics, with each method's val MaxBoxAccV2 under ``val_max_box_acc_v2``."""
    if not (out / METRICS_FILE).is_file():
        raise SystemExit(f"{out}: no finished run there (no {METRICS_FILE}); run without --summary-only to train it")
    metrics = json.loads((out / METRICS_FILE).read_text())
    candidates = json.loads((out / SELECTION_FILE).read_text())["candidates"]
    val = {c["method"]: c["val_max_box_acc_v2"] for c in candidates if c["selected"]}
    return {**metrics, "val_max_box_acc_v2": val}


def _cell(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):6.1f} ± {spread:4.1f}"


def _summarise(name: str, runs: list[dict]) -> None:
    print(f"\n{name}: {len(runs)} seed(s)")
    print(f"{'metric':<14}" + "".join(f"{label:>15}" for label, _ in METHODS) + f"{'SPOL - CAM':>15}")
    for label, key in KEYS:
        if any(r["spol"][key] is None for r in runs):
            continue
        cells = [_cell([r[method][key] for r in runs]) for _, method in METHODS]
        diff = _cell([r["spol"][key] - r["cam"][key] for r in runs])
        print(f"{label:<14}" + "".join(f"{cell:>15}" for cell in cells) + f"{diff:>15}")
    val = [_cell([r["val_max_box_acc_v2"][method] for r in runs]) for _, method in METHODS]
    print(f"{'val V2':<14}" + "".join(f"{cell:>15}" for cell in val) + "  (where thresholds were chosen)")
    print(
        "per seed GT-known (SPOL / MFF-CAM / CAM): "
        + ", ".join("/".join(f"{r[m]['gt_known_loc']:.1f}" for _, m in METHODS) for r in runs)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for the data and the runs")
    parser.add_argument("--datasets", nargs="+", default=["demo"], choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="recipe override for every run")
    parser.add_argument(
        "--summary-only", action="store_true", help="train nothing: summarise the runs already finished in --out"
    )
    args = parser.parse_args()
    summary = {}
    for name in args.datasets:
        folders = [args.out / f"{name}-seed{seed}" for seed in args.seeds]
        if args.summary_only:
            summary[name] = [_finished(folder) for folder in folders]
            continue
        data = _data(args.out, name)
        summary[name] = [_run(data, folder, seed, args.extra) for folder, seed in zip(folders, args.seeds, strict=True)]
    for name, runs in summary.items():
        _summarise(name, runs)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
