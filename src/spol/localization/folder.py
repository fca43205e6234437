"""Localizing files and folders to an output folder (what `spol localize` runs).

Output folder layout:

- ``predictions.jsonl``: one JSON object per localized image, in input order, with keys
  ``image`` (the path as given or walked), ``width``, ``height`` (after EXIF orientation),
  ``class``, ``class_index``, ``score``, ``top5`` (``[[name, probability], ...]``), ``box``
  (``[x0, y0, x1, y1]`` in those pixels, protocol convention, or null for no object),
  ``mask`` and ``overlay`` (paths of the two PNGs below).
- ``<stem>_mask.png``: the object mask, 8-bit, 255 = object, at the image's size.
- ``<stem>_overlay.png``: the image with the mask tinted red and the box in green.

Stems that repeat (``a/x.jpg`` and ``b/x.jpg``, or ``x.jpg`` and ``x.png``) get the extension
and then a counter appended (``x``, ``x_png``, ``x_2``), in input order.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from spol.data import UnreadableImageError, load_image_rgb
from spol.fileio import atomic_path, remove_stale_temporaries, save_image_atomic
from spol.localization.localizer import Localization, Localizer
from spol.localization.overlay import localization_overlay

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class SkippedImage:
    """An input that was not localized, and why."""

    path: str
    reason: str


@dataclass
class LocalizeFilesReport:
    """Summary of `localize_files`: how many images were localized, which were skipped, where."""

    out_dir: Path
    predictions: Path
    localized: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)


def collect_images(inputs: Sequence[str | os.PathLike[str]], *, exclude: Path | None = None) -> list[Path]:
    """Expand `inputs` into a list of files: files as given, folders walked recursively in sorted order.

    Every file found is returned (whether it is an image is decided when it is read). Files under
    `exclude` (the output folder) are left out, so re-running on a parent folder does not read
    earlier outputs.

    Raises:
        FileNotFoundError: an input does not exist.
    """
    excluded = exclude.resolve() if exclude is not None else None
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                root_path = Path(root)
                resolved = root_path.resolve()
                if excluded is not None and (resolved == excluded or excluded in resolved.parents):
                    dirs.clear()
                    continue
                files.extend(root_path / name for name in sorted(names))
        else:
            raise FileNotFoundError(f"input {path} does not exist; pass image files or folders of images")
    return files


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Unique output stems for `paths`, in order: the stem, then ``stem_ext``, then ``stem_N``."""
    taken: set[str] = set()
    stems = []
    for path in paths:
        candidates = [path.stem, f"{path.stem}_{path.suffix.lstrip('.')}" if path.suffix else path.stem]
        stem = next((c for c in candidates if c not in taken), None)
        counter = 2
        while stem is None or stem in taken:
            stem = f"{path.stem}_{counter}"
            counter += 1
        taken.add(stem)
        stems.append(stem)
    return stems


def _output_paths(out_dir: Path, stem: str) -> tuple[Path, Path]:
    return out_dir / f"{stem}_mask.png", out_dir / f"{stem}_overlay.png"


def _check_outputs(out_dir: Path, stems: Sequence[str], force: bool) -> None:
    if force:
        return
    existing = [out_dir / PREDICTIONS_FILE] if (out_dir / PREDICTIONS_FILE).exists() else []
    for stem in stems:
        existing += [p for p in _output_paths(out_dir, stem) if p.exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing[:3])
        if len(existing) > 3:
            shown += f" and {len(existing) - 3} more"
        raise FileExistsError(f"{shown} already exist(s); pass --force to overwrite, or choose another --out folder")


def _write_png(path: Path, array: np.ndarray) -> None:
    save_image_atomic(path, Image.fromarray(array), "PNG")


def _write_outputs(image: Image.Image, result: Localization, source: Path, out_dir: Path, stem: str) -> dict[str, Any]:
    mask_path, overlay_path = _output_paths(out_dir, stem)
    _write_png(mask_path, result.mask.astype(np.uint8) * 255)
    _write_png(overlay_path, localization_overlay(np.asarray(image), result.mask, result.box))
    record = {"image": str(source), **result.to_json()}
    record["mask"] = str(mask_path)
    record["overlay"] = str(overlay_path)
    return record


def localize_files(
    localizer: Localizer,
    paths: Sequence[Path],
    out_dir: str | os.PathLike[str],
    *,
    batch_size: int = 16,
    force: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_skip: Callable[[SkippedImage], None] | None = None,
    progress: bool = True,
) -> LocalizeFilesReport:
    """Localize every file of `paths` and write the output folder described in this module.

    Files that cannot be read as images are skipped (`on_skip` is called, the report lists them);
    the others are processed in batches of `batch_size`. ``predictions.jsonl`` appears
    atomically when all are done.

    Args:
        localizer: the loaded localizer.
        paths: image files (see `collect_images`).
        out_dir: output folder, created if missing.
        batch_size: images per network call.
        force: overwrite existing outputs; without it any existing output is an error, raised
            before anything is computed.
        on_result: called with each image's JSON record, in input order.
        on_skip: called with each skipped file.
        progress: show a tqdm bar on stderr.

    Raises:
        FileExistsError: an output exists and `force` is false.
        ValueError: `batch_size` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out_dir = Path(out_dir)
    stems = output_stems(paths)
    _check_outputs(out_dir, stems, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # left by a localize run that was killed
    report = LocalizeFilesReport(out_dir=out_dir, predictions=out_dir / PREDICTIONS_FILE)

    with atomic_path(report.predictions) as tmp, tmp.open("w", encoding="utf-8") as predictions:
        pending: list[tuple[Image.Image, Path, str]] = []

        def flush() -> None:
            results = localizer.localize_batch([image for image, _, _ in pending], batch_size=len(pending))
            for (image, source, stem), result in zip(pending, results, strict=True):
                record = _write_outputs(image, result, source, out_dir, stem)
                predictions.write(json.dumps(record) + "\n")
                report.localized += 1
                if on_result is not None:
                    on_result(record)
            pending.clear()

        for path, stem in tqdm(
            list(zip(paths, stems, strict=True)),
            desc="localize",
            unit="img",
            file=sys.stderr,
            disable=None if progress else True,
        ):
            try:
                image = load_image_rgb(path, exif_orientation=True)
            except (UnreadableImageError, OSError) as error:
                skipped = SkippedImage(str(path), str(error))
                report.skipped.append(skipped)
                logger.debug("skipped %s: %s", path, error)
                if on_skip is not None:
                    on_skip(skipped)
                continue
            pending.append((image, path, stem))
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
    return report


__all__ = [
    "PREDICTIONS_FILE",
    "LocalizeFilesReport",
    "SkippedImage",
    "collect_images",
    "localize_files",
    "output_stems",
]
