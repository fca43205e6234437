"""The user WSOL is for, end to end: a folder of labelled photos, first without any box, then with a few.

Draws a demo-like synthetic dataset (its own seed, train images only), lays it out as an `imagefolder`
(``root/<class>/<image>.jpg``, plus a ``.DS_Store`` and a ``README.txt`` a real folder has), and runs
``spol pipeline --format imagefolder`` with the CPU recipe twice: on the labels alone, and with
``boxes.csv`` holding the boxes of ``--boxes-per-class`` random images per class. Prints each run's
time, what it localizes with, and the second run's test metrics and val choice.

Example::

    python benchmarks/labels_only.py --out /tmp/labels_only --seed 11 --train-per-class 60 --boxes-per-class 6
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path


def make_folders(out: Path, *, seed: int, train_per_class: int, boxes_per_class: int) -> tuple[Path, Path]:
    """``out/photos`` (labels only) and ``out/boxed`` (the same, with ``boxes.csv``)."""
    from spol.data import SYNTHETIC_PRESETS, generate_synthetic, read_dataset

    config = dataclasses.replace(SYNTHETIC_PRESETS["demo"], seed=seed, train_per_class=train_per_class, test_per_class=0)
    cub = generate_synthetic(out / "generated", config, progress=False)
    photos, boxed = out / "photos", out / "boxed"
    for folder in (photos, boxed):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(cub / "images", folder)
        (folder / ".DS_Store").write_bytes(b"\0")
        (folder / "README.txt").write_text("my photos\n")
    boxes = {record.image_id: record.boxes for record in read_dataset(cub, "cub").records}
    rows = ["image,x0,y0,x1,y1"]
    for class_dir in sorted(path for path in boxed.iterdir() if path.is_dir()):
        images = sorted(class_dir.glob("*.jpg"))
        random.Random(seed).shuffle(images)
        for image in images[:boxes_per_class]:
            image_id = image.relative_to(boxed).as_posix()
            rows += [f"{image_id},{x0:g},{y0:g},{x1:g},{y1:g}" for x0, y0, x1, y1 in boxes[image_id]]
    (boxed / "boxes.csv").write_text("\n".join(rows) + "\n")
    return photos, boxed


def run(data: Path, out: Path) -> float:
    """``spol pipeline --format imagefolder`` (CPU recipe) on `data` into `out`; returns its wall seconds."""
    spol = Path(sys.executable).with_name("spol")
    start = time.perf_counter()
    command = [str(spol), "pipeline", "--data", str(data), "--format", "imagefolder", "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Make both folders, run both pipelines, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=11, help="the generator's seed (the recipe's seed stays 0)")
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--boxes-per-class", type=int, default=6)
    args = parser.parse_args()
    photos, boxed = make_folders(
        args.out, seed=args.seed, train_per_class=args.train_per_class, boxes_per_class=args.boxes_per_class
    )
    for name, data in (("labels only", photos), (f"{args.boxes_per_class} boxes per class", boxed)):
        run_dir = args.out / "runs" / data.name
        seconds = run(data, run_dir)
        selection = json.loads((run_dir / "selection.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(f"{name}: {seconds:.0f} s; localizes with {selection['method']} ({selection['method_from']})")
        for method, entry in metrics.items():
            if "max_box_acc_v2" in entry:
                print(
                    f"  {method:7} test GT-known {entry['gt_known_loc']:.1f}  MaxBoxAccV2 {entry['max_box_acc_v2']:.2f}"
                    f"  val MaxBoxAccV2 {selection['val_max_box_acc_v2'][method]:.2f}"
                    f"  95% interval {selection['bootstrap']['interval_95'][method]}"
                )


if __name__ == "__main__":
    main()
