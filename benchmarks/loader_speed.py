"""Image loading speed per CPU core: full JPEG decode against the reduced-scale decode (Pillow's draft).

Writes JPEG photos (scikit-image's bundled photographs, resized) at ImageNet's typical size
(500 x 375) and at a camera's (2000 x 1500), then times, in one process with one torch thread,
what a loader worker does per image: decode, resize, crop or not, normalise.

    .venv/bin/python benchmarks/loader_speed.py --images 200 --out /tmp/loader_bench
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data as photos

from spol.data.images import load_image_rgb
from spol.data.transforms import NORMALIZATION, eval_transform, train_transform

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")
SIZES = {"imagenet 500x375": (500, 375), "camera 2000x1500": (2000, 1500)}


def write_jpegs(folder: Path, size: tuple[int, int], count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.fromarray(getattr(photos, name)()).convert("RGB") for name in PHOTOS]
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        if not path.exists():
            sources[i % len(sources)].resize(size, Image.BILINEAR).save(path, quality=90)
        paths.append(path)
    return paths


def images_per_second(paths: list[Path], transform, min_size: int | None, rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            transform(load_image_rgb(path, min_size=min_size))
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="JPEG files per size")
    parser.add_argument("--out", type=Path, default=Path("/tmp/spol_loader_bench"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    jobs = {
        "train (resize 256, crop 224)": (train_transform(resize=256, crop=224, normalization="imagenet"), 256),
        "eval (resize 224)": (eval_transform(resize=224), 224),
    }
    print("| photo size | loader job | full decode img/s | reduced decode img/s | speed-up |")
    print("|---|---|---|---|---|")
    for size_name, size in SIZES.items():
        paths = write_jpegs(args.out / size_name.split()[0], size, args.images)
        for job_name, (transform, min_size) in jobs.items():
            full = images_per_second(paths, transform, None)
            reduced = images_per_second(paths, transform, min_size)
            print(f"| {size_name} | {job_name} | {full:.0f} | {reduced:.0f} | x{reduced / full:.2f} |")
    # What the reduced decode changes in the pixels the network sees (a 2000 x 1500 photo).
    path = write_jpegs(args.out / "camera", SIZES["camera 2000x1500"], 1)[0]
    transform = eval_transform(resize=224)  # [0, 1] pixels: the predictor divides them by the std
    std = torch.tensor(NORMALIZATION["imagenet"][1]).view(3, 1, 1)
    difference = (transform(load_image_rgb(path)) - transform(load_image_rgb(path, min_size=224))).abs() / std
    print(f"\nnormalised-input difference, full vs reduced decode at 224: mean {float(difference.mean()):.4f}, "
          f"max {float(difference.max()):.3f} (in units of the ImageNet std; 1/255 of a pixel is about {1 / 255 / 0.226:.4f})")


if __name__ == "__main__":
    main()
