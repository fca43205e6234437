"""Write a PNG grid of synthetic-benchmark samples with their masks and boxes, for eyeballing.

Each tile pair shows an image as written (JPEG) with the mask's outline (green) and the
box from bounding_boxes.txt (white, dashed by a black under-stroke), and beside it the
segmentation PNG. Samples are read back from the CUB files, so the preview also checks
the layout. Without --data, a small dataset is drawn into a temporary folder first.

    .venv/bin/python benchmarks/synthetic_preview.py preview.png [--data DIR] [--preset demo] [--count 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from spol.data.synthetic import SYNTHETIC_PRESETS, generate_synthetic

TILE = 192


def _read_index(root: Path, name: str) -> dict[int, list[str]]:
    lines = (root / name).read_text(encoding="utf-8").splitlines()
    return {int(parts[0]): parts[1:] for parts in (line.split(" ") for line in lines if line.strip())}


def _tile(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def preview(root: Path, out_png: Path, count: int) -> None:
    """Draw the first test image of each class, then further ones, up to `count` samples."""
    images = _read_index(root, "images.txt")
    labels = _read_index(root, "image_class_labels.txt")
    boxes = _read_index(root, "bounding_boxes.txt")
    classes = _read_index(root, "classes.txt")
    by_class: dict[int, list[int]] = {}
    for image_id in sorted(images):
        by_class.setdefault(int(labels[image_id][0]), []).append(image_id)
    order = [ids[i] for i in range(max(map(len, by_class.values()))) for ids in by_class.values() if i < len(ids)]

    tiles = []
    for image_id in order[:count]:
        relpath = images[image_id][0]
        rgb = np.asarray(Image.open(root / "images" / relpath).convert("RGB")).copy()
        mask = np.asarray(Image.open(root / "segmentations" / Path(relpath).with_suffix(".png")))
        scale = TILE / rgb.shape[1]
        shown = _tile(rgb)
        contours, _ = cv2.findContours((_tile(mask) > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(shown, contours, -1, (0, 255, 0), 1)
        x, y, w, h = (float(v) for v in boxes[image_id])
        p0 = (round(x * scale), round(y * scale))
        p1 = (round((x + w) * scale) - 1, round((y + h) * scale) - 1)
        cv2.rectangle(shown, p0, p1, (0, 0, 0), 3)
        cv2.rectangle(shown, p0, p1, (255, 255, 255), 1)
        name = classes[int(labels[image_id][0])][0]
        cv2.putText(shown, name, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(shown, name, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([shown, np.repeat(_tile(mask)[..., None], 3, axis=2)], axis=1))

    columns = 4
    blank = np.full_like(tiles[0], 64)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out_png)
    logging.info("wrote %s (%d samples from %s)", out_png, min(count, len(order)), root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_png", type=Path, help="PNG to write")
    parser.add_argument("--data", type=Path, help="an existing synthetic (CUB-layout) dataset; default: draw one")
    parser.add_argument("--preset", default="demo", choices=sorted(SYNTHETIC_PRESETS), help="config to draw")
    parser.add_argument("--count", type=int, default=20, help="samples in the grid")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn dataset")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.data is not None:
        preview(args.data, args.out_png, args.count)
        return
    config = dataclasses.replace(SYNTHETIC_PRESETS[args.preset], train_per_class=0, test_per_class=2, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        generate_synthetic(Path(tmp) / "synthetic", config, workers=1, progress=False)
        preview(Path(tmp) / "synthetic", args.out_png, args.count)


if __name__ == "__main__":
    main()
