"""How good the pseudo masks are: the share of each target value, and precision and recall against ground truth."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from spol.data.records import ImageRecord
from spol.evaluation.pixel_accuracy import read_ground_truth_mask
from spol.stages.pseudo_masks import (
    BACKGROUND_THRESHOLD,
    FOREGROUND_THRESHOLD,
    IGNORE_INDEX,
    double_threshold,
    pseudo_mask_path,
    read_pseudo_mask,
)


def pseudo_mask_statistics(
    records: Sequence[ImageRecord],
    out_dir: str | os.PathLike[str],
    *,
    foreground: float = FOREGROUND_THRESHOLD,
    background: float = BACKGROUND_THRESHOLD,
    limit: int = 200,
) -> dict[str, Any] | None:
    """What the segmentation network learns from.

    The share of foreground, background and ignored pixels of the double-thresholded pseudo masks,
    and their foreground's precision and recall against the ground-truth masks where the dataset has
    them (read as the PxAP protocol reads them, at the image's size), over up to `limit` evenly spaced
    records (percent).

    Returns:
        ``{"images", "foreground", "background", "ignored", "precision", "recall"}`` (the last two None
        without masks), or None when no record has a pseudo mask.
    """
    step = max(1, len(records) // max(limit, 1))
    counts = np.zeros(6, dtype=np.int64)  # fg, bg, ignored, fg & gt, gt, images
    with_masks = True
    for record in list(records)[::step][:limit]:
        path = pseudo_mask_path(out_dir, record.image_id)
        if not path.is_file():
            continue
        target = double_threshold(*read_pseudo_mask(path), foreground=foreground, background=background)
        counts[0] += int((target == 1).sum())
        counts[1] += int((target == 0).sum())
        counts[2] += int((target == IGNORE_INDEX).sum())
        counts[5] += 1
        if not record.mask_paths:
            with_masks = False
            continue
        truth = np.zeros(target.shape, dtype=bool)
        height, width = target.shape
        for mask_path in record.mask_paths:
            try:
                truth |= read_ground_truth_mask(mask_path, (width, height))
            except FileNotFoundError:
                with_masks = False
                break
        counts[3] += int(((target == 1) & truth).sum())
        counts[4] += int(truth.sum())
    if counts[5] == 0:
        return None
    pixels = max(int(counts[:3].sum()), 1)
    return {
        "images": int(counts[5]),
        "foreground": 100.0 * counts[0] / pixels,
        "background": 100.0 * counts[1] / pixels,
        "ignored": 100.0 * counts[2] / pixels,
        "precision": 100.0 * counts[3] / counts[0] if with_masks and counts[0] else None,
        "recall": 100.0 * counts[3] / counts[4] if with_masks and counts[4] else None,
    }


__all__ = ["pseudo_mask_statistics"]
