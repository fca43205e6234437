"""PxAP, the pixel average precision of Choe et al. (CVPR 2020), exactly as clovaai/wsolevaluation.

Conventions (wsolevaluation's ``evaluation.py``, ``MaskEvaluator``):

* Ground truth: each instance mask is read as grayscale (``cv2.imread``), resized to 224 x 224
  with nearest-neighbour interpolation and is foreground where > 0.5; the union over instances
  is the foreground. The ignore mask, read alike, minus the foreground is left out.
* Histograms over all images of the score values at foreground and at background pixels, with
  bin edges ``thresholds + [1, 2, 3]`` (NumPy ``histogram`` semantics): `score_histograms` per
  image, summed by `spol.evaluation.ProtocolCounts`.
* Reversed cumulative sums give ``tp`` and ``fp``; ``precision = tp / (tp + fp)``,
  ``recall = tp / total_fg`` and ``PxAP = 100 * sum_i precision[i] * (recall[i] - recall[i-1])``
  over ``i >= 1`` where ``tp + fp != 0``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from spol.scoremaps import IGNORE_INDEX, PROTOCOL_SIZE, check_scoremap

FOREGROUND, BACKGROUND = 1, 0
"""Values of a protocol ground-truth mask, besides `spol.scoremaps.IGNORE_INDEX`."""


def read_ground_truth_mask(path: str | os.PathLike[str], size: tuple[int, int]) -> np.ndarray:
    """One instance mask as the protocol reads it: bool ``[height, width]`` at `size` ``(width, height)``.

    Read as grayscale, resized with nearest-neighbour interpolation, foreground where > 0.5 (any
    non-zero value of an 8-bit file, as wsolevaluation).

    Raises:
        FileNotFoundError: the mask cannot be read.
    """
    mask = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {path}: missing or not an image; check --masks / the mask root")
    mask = cv2.resize(np.float32(mask), size, interpolation=cv2.INTER_NEAREST)
    return mask > 0.5


def load_protocol_mask(
    mask_paths: Sequence[str | os.PathLike[str]],
    ignore_path: str | os.PathLike[str] | None = None,
    resize: int = PROTOCOL_SIZE,
) -> np.ndarray:
    """The protocol's ground-truth mask of one image.

    Args:
        mask_paths: Instance mask files (grayscale; foreground where > 0.5 after a nearest resize).
        ignore_path: Ignore-region mask, or None for none.
        resize: Side of the protocol grid.

    Returns:
        uint8 ``[resize, resize]``: 1 foreground, 0 background, 255 ignored.

    Raises:
        ValueError: `mask_paths` is empty.
        FileNotFoundError: a mask cannot be read.
    """
    if len(mask_paths) == 0:
        raise ValueError("an image needs at least one instance mask for PxAP (its localization.txt lines)")
    foreground = np.zeros((resize, resize), dtype=bool)
    for path in mask_paths:
        foreground |= read_ground_truth_mask(path, (resize, resize))
    mask = foreground.astype(np.uint8)
    if ignore_path is not None:
        mask[read_ground_truth_mask(ignore_path, (resize, resize)) & ~foreground] = IGNORE_INDEX
    return mask


def _bin_edges(thresholds: np.ndarray) -> np.ndarray:
    return np.append(np.asarray(thresholds, dtype=np.float64), [1.0, 2.0, 3.0])


def score_histograms(
    scoremap: np.ndarray, gt_mask: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of foreground and background scores per bin ``[t_i, t_i+1), ..., [1, 2), [2, 3]``.

    Args:
        scoremap: 2-D float map in [0, 1], the shape of `gt_mask`.
        gt_mask: uint8 mask from `load_protocol_mask` (1 fg, 0 bg, 255 ignored).
        thresholds: The score thresholds (`cam_thresholds`).

    Returns:
        ``(foreground, background)`` int64 histograms of ``len(thresholds) + 2`` bins; equal to
        ``numpy.histogram(values, bins=thresholds + [1, 2, 3])`` for values in [0, 3].
    """
    check_scoremap(scoremap)
    if scoremap.shape != gt_mask.shape:
        raise ValueError(f"score map shape {scoremap.shape} differs from the mask's {gt_mask.shape}")
    edges = _bin_edges(thresholds)
    bins = len(edges) - 1
    # searchsorted(side="right") - 1 is numpy.histogram's bin for every value in [edges[0], edges[-1]);
    # scores are <= 1 < edges[-1], so the closed last bin never matters. No sort, unlike histogram.
    index = np.searchsorted(edges, np.asarray(scoremap, dtype=np.float64).ravel(), side="right") - 1
    labels = gt_mask.ravel()
    fg = np.bincount(index[labels == FOREGROUND], minlength=bins)[:bins]
    bg = np.bincount(index[labels == BACKGROUND], minlength=bins)[:bins]
    return fg.astype(np.int64), bg.astype(np.int64)


def precision_recall(
    foreground_hist: np.ndarray, background_hist: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixel precision-recall curve behind PxAP, from the highest threshold down.

    Returns:
        ``(precision, recall, defined)``: float64 arrays over the reversed bins; precision is
        NaN where no pixel is predicted positive (``defined`` False there).

    Raises:
        ValueError: no foreground pixel at all, or no positive prediction at any threshold.
    """
    fg = np.asarray(foreground_hist, dtype=np.float64)
    bg = np.asarray(background_hist, dtype=np.float64)
    tp = fg[::-1].cumsum()
    fp = bg[::-1].cumsum()
    fn = fg.sum() - tp
    if ((tp + fn) <= 0).all():
        raise ValueError("PxAP: no foreground pixel in the ground-truth masks of the evaluated images")
    if ((tp + fp) <= 0).all():
        raise ValueError("PxAP: no positive prediction at any threshold (no pixel left out of the ignore region)")
    predicted = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / predicted
        recall = tp / (tp + fn)
    return precision, recall, predicted != 0


def compute_pxap(foreground_hist: np.ndarray, background_hist: np.ndarray) -> float:
    """PxAP in percent from accumulated histograms (ascending bins).

    Raises:
        ValueError: no foreground pixel at all, or no positive prediction at any threshold.
    """
    precision, recall, defined = precision_recall(foreground_hist, background_hist)
    return float((precision[1:] * np.diff(recall))[defined[1:]].sum() * 100)
