"""Each pipeline stage at 1 k, 5 k and 20 k images: images/s and peak memory (RSS).

For every size N the script draws the synthetic benchmark with N train and N test images (64 px,
10 classes), then runs each stage in a fresh process, as `spol pipeline` runs it (the CPU recipe
with small images, one epoch per network), and prints its wall time, images/s and the peak RSS of
the stage's process and of its largest child (loader or writer process). Evaluation keeps counters,
not maps, so the memory of the score-map stage must not grow with N.

    .venv/bin/python benchmarks/pipeline_scale.py --sizes 1000 5000 20000 --out /tmp/spol_scale

Stages: ``cam`` (MFF-Net CAM training), ``pseudo_masks``, ``seg`` (segmentation training),
``scoremaps`` (SPOL's maps and classes on the test split, evaluated as they are made: the
pipeline's inference and evaluation together) and ``evaluation`` (the streamed evaluation alone,
on N CAM-like maps made in memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("cam", "pseudo_masks", "seg", "scoremaps", "evaluation")
OVERRIDES = (
    "data.resize=64",
    "data.crop=56",
    "data.num_workers=2",
    "cam.epochs=1",
    "cam.batch_size=64",
    "seg.epochs=1",
    "cam.min_steps=null",
    "baseline.min_steps=null",
    "seg.min_steps=null",
    "seg.batch_size=64",
    "pseudo_masks.resize=64",
    "pseudo_masks.batch_size=64",
    "evaluation.input_size=64",
    "evaluation.batch_size=64",
    "trainer.log_every_n_steps=50",
)


def _peak_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def run_stage(stage: str, size: int, out: Path) -> dict:
    """Run one stage in this process; returns images, seconds and peak RSS."""
    import numpy as np
    import torch

    from spol.config import load_recipe
    from spol.models import Predictor, load_exported_model
    from spol.pipeline import prepare_dataset
    from spol.pipeline.scoring import ScoreMapSystem, evaluation_workers, score_split
    from spol.stages import generate_pseudo_masks, train_cam, train_seg

    torch.set_num_threads(2)
    recipe = load_recipe("cpu", OVERRIDES)
    dataset, _ = prepare_dataset(out / f"data-{size}", "cub", recipe)
    train, test = dataset.split("train"), dataset.split("test")
    work = out / f"run-{size}"
    start = time.perf_counter()
    if stage == "cam":
        train_cam(recipe, dataset, work / "cam", force=True)
        images = len(train)
    elif stage == "pseudo_masks":
        generate_pseudo_masks(
            load_exported_model(work / "cam" / "model.pt"),
            train,
            work / "pseudo_masks",
            resize=recipe.pseudo_masks.resize,
            batch_size=recipe.pseudo_masks.batch_size,
            trainer=recipe.trainer,
            num_workers=recipe.data.num_workers,
            workers=recipe.pseudo_masks.workers,
            force=True,
            progress=False,
        )
        images = len(train)
    elif stage == "seg":
        train_seg(recipe, dataset, work / "pseudo_masks", work / "seg", force=True)
        images = len(train)
    elif stage == "scoremaps":
        seg, cam = load_exported_model(work / "seg" / "model.pt"), load_exported_model(work / "cam" / "model.pt")
        system = ScoreMapSystem(Predictor(seg, "seg", cam, input_size=64))
        counts = score_split(system, test, recipe=recipe, masks=True, progress=False)
        assert counts.num_images == len(test)
        images = len(test)
    elif stage == "evaluation":
        import cv2

        from spol.evaluation import StreamingEvaluator, top_k_hits

        rng = np.random.default_rng(0)
        evaluator = StreamingEvaluator(masks=True, workers=evaluation_workers(recipe))
        for begin in range(0, len(test), 64):
            batch = test[begin : begin + 64]
            low = rng.random((len(batch), 7, 7)).astype(np.float32)
            maps = np.stack([cv2.resize(m, (224, 224), interpolation=cv2.INTER_LINEAR) for m in low])
            maps = (maps - maps.min(axis=(1, 2), keepdims=True)) / np.ptp(maps, axis=(1, 2), keepdims=True)
            labels = np.array([record.label for record in batch])
            evaluator.add(batch, maps, top_k_hits(rng.integers(0, 10, (len(batch), 5)), labels))
        evaluator.finish()
        images = len(test)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    seconds = time.perf_counter() - start
    own, child = _peak_mib()
    return {"stage": stage, "size": size, "images": images, "seconds": seconds, "peak_rss_mib": own, "child_peak_rss_mib": child}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000], help="train (and test) images")
    parser.add_argument("--out", type=Path, default=Path("/tmp/spol_scale"))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # one stage, in a child process
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.size, args.out)))
        return

    from spol.data import SyntheticConfig, generate_synthetic

    rows = []
    for size in args.sizes:
        data = args.out / f"data-{size}"
        if not (data / "images.txt").is_file():
            per_class = size // 10
            config = SyntheticConfig(num_classes=10, train_per_class=per_class, test_per_class=per_class, image_size=(64, 64))
            generate_synthetic(data, config, progress=False)
        for stage in args.stages:
            command = [sys.executable, __file__, "--stage", stage, "--size", str(size), "--out", str(args.out)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                sys.exit(f"stage {stage} at {size} images failed:\n{result.stderr[-3000:]}")
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{size:>6} {stage:<13} {row['images']:>6} img in {row['seconds']:7.1f} s = {row['images'] / row['seconds']:7.1f} img/s, "
                f"peak RSS {row['peak_rss_mib']:6.0f} MiB (largest child {row['child_peak_rss_mib']:5.0f} MiB)",
                flush=True,
            )
    print("\n| stage | " + " | ".join(f"{s} images: img/s, peak RSS" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for stage in args.stages:
        cells = []
        for size in args.sizes:
            row = next(r for r in rows if r["stage"] == stage and r["size"] == size)
            cells.append(f"{row['images'] / row['seconds']:.0f} img/s, {row['peak_rss_mib']:.0f} MiB")
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
