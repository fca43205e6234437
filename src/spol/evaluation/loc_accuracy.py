"""SPOL's paper-style numbers: Top-1 Loc, Top-5 Loc and GT-known Loc at one chosen threshold.

GT-known Loc counts an image when its box at the chosen score threshold overlaps a ground-truth
box with IoU >= 0.5 (the protocol's ``>=``; SPOL's release uses ``>``, which differs only at exact
ties); Top-1 / Top-5 Loc additionally need the true class first / among the top five
predictions. The threshold must come from a validation split (`choose_threshold`), never from
the split it is applied to; an image with no contour is a failure, never skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spol.evaluation.evaluate import EvaluationResult

LOC_IOU = 50
"""IoU level (percent) of the paper-style localization numbers."""


def choose_threshold(result: EvaluationResult, iou: int = LOC_IOU) -> float:
    """The first score threshold reaching the best box accuracy at `iou` (run this on val).

    Raises:
        ValueError: `iou` was not evaluated, or the result has no box metrics.
    """
    if iou not in result.best_threshold:
        raise ValueError(
            f"IoU level {iou} not evaluated (have {sorted(result.best_threshold)}); add it to iou_thresholds"
        )
    return result.best_threshold[iou]


def correct_at_threshold(result: EvaluationResult, threshold: float, iou: int = LOC_IOU) -> np.ndarray:
    """Whether each box is correct at `iou` at the evaluated threshold nearest `threshold`, bool ``[num_images]``.

    Raises:
        ValueError: `iou` not evaluated, or `threshold` farther than half a step from every
            evaluated threshold (different ``cam_curve_interval``).
    """
    if iou not in result.iou_thresholds or not result.max_box_acc:
        raise ValueError(
            f"IoU level {iou} not evaluated (have {list(result.iou_thresholds)}); add it to iou_thresholds"
        )
    index = int(np.argmin(np.abs(result.thresholds - threshold)))
    step = float(result.thresholds[1] - result.thresholds[0]) if len(result.thresholds) > 1 else 1.0
    if abs(float(result.thresholds[index]) - threshold) > step / 2:
        raise ValueError(
            f"threshold {threshold} is not on the evaluated grid (step {step}); use the same cam_curve_interval"
        )
    return result.correct[result.iou_thresholds.index(iou), index]


def localization_accuracy(correct_at_t: np.ndarray, labels: np.ndarray, top5: np.ndarray) -> dict[str, float]:
    """Top-1, Top-5 and GT-known Loc in percent.

    Args:
        correct_at_t: bool ``[N]``, box correct (IoU >= 0.5) at the chosen threshold.
        labels: int ``[N]`` true classes.
        top5: int ``[N, 5]`` predicted classes, best first.

    Returns:
        ``{"top1_loc", "top5_loc", "gt_known_loc"}``.

    Raises:
        ValueError: shapes disagree or N is 0.
    """
    correct = np.asarray(correct_at_t, dtype=bool).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    top5 = np.asarray(top5)
    n = len(correct)
    if n == 0:
        raise ValueError("no images: localization accuracy needs at least one")
    if labels.shape != (n,) or top5.ndim != 2 or top5.shape[0] != n or top5.shape[1] < 1:
        raise ValueError(
            f"shapes disagree: correct_at_t {correct.shape}, labels {labels.shape}, top5 {top5.shape}; "
            "expected [N], [N] and [N, 5]"
        )
    top1_hit = top5[:, 0] == labels
    top5_hit = (top5[:, :5] == labels[:, None]).any(axis=1)
    return {
        "top1_loc": 100.0 * float((correct & top1_hit).sum()) / n,
        "top5_loc": 100.0 * float((correct & top5_hit).sum()) / n,
        "gt_known_loc": 100.0 * float(correct.sum()) / n,
    }


def read_top5_predictions(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a predictions CSV: ``image_id,c1,c2,c3,c4,c5`` per line (best class first).

    A first line starting with ``image_id`` is a header and skipped; blank lines are skipped.

    Returns:
        ``{image_id: int64 [5]}``.

    Raises:
        FileNotFoundError: `path` is missing.
        ValueError: a malformed line or a repeated image id (names ``file:line``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} not found")
    predictions: dict[str, np.ndarray] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.strip()
        if not line or (number == 1 and line.split(",")[0].strip() == "image_id"):
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) != 6 or not parts[0]:
                raise ValueError
            classes = np.array([int(v) for v in parts[1:]], dtype=np.int64)
        except ValueError:
            raise ValueError(
                f"{path}:{number}: malformed line {line!r}; expected image_id followed by 5 class indices"
            ) from None
        if parts[0] in predictions:
            raise ValueError(f"{path}:{number}: image id {parts[0]} listed again")
        predictions[parts[0]] = classes
    return predictions


def localization_from_predictions(
    result: EvaluationResult,
    labels: dict[str, int],
    predictions: dict[str, np.ndarray],
    *,
    threshold: float | None = None,
    iou: int = LOC_IOU,
) -> dict[str, float]:
    """Top-1 / Top-5 / GT-known Loc of an evaluated set from per-image top-5 predictions.

    Args:
        result: `evaluate_scoremaps` output (its ``image_ids`` order is used).
        labels: ``{image_id: true class}``.
        predictions: ``{image_id: int [5]}`` (`read_top5_predictions`), one per evaluated image.
        threshold: Score threshold to apply, chosen on a validation split; None takes the best
            threshold of `result` itself at `iou` (an oracle choice on the evaluated split, as
            MaxBoxAcc does; say so when reporting).
        iou: IoU level in percent.

    Raises:
        ValueError: an evaluated image has no prediction, or `iou` was not evaluated.
    """
    missing = [image_id for image_id in result.image_ids if image_id not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} evaluated images have no prediction, e.g. {missing[0]}")
    chosen = choose_threshold(result, iou) if threshold is None else threshold
    correct = correct_at_threshold(result, chosen, iou)
    top5 = np.stack([predictions[image_id][:5] for image_id in result.image_ids])
    truth = np.array([labels[image_id] for image_id in result.image_ids], dtype=np.int64)
    return localization_accuracy(correct, truth, top5)
