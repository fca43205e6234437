"""Evaluate stored score maps of a set of images under the WSOL protocol: MaxBoxAcc(V2), PxAP and Top-k Loc.

`evaluate_scoremaps` takes records (ground truth in original pixels) and a function giving each
image's score map (`NpyScoreMaps` for ``<image_id>.npy`` files), and feeds them, in records order,
to the `spol.evaluation.StreamingEvaluator` that ``spol pipeline`` feeds a network's maps to: the
same counts (`spol.evaluation.ProtocolCounts`), the same `spol.evaluation.EvaluationResult`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from spol.data.records import ImageRecord
from spol.evaluation.box_accuracy import DEFAULT_IOU_THRESHOLDS, ContourMode
from spol.evaluation.counts import EvaluationResult, ProtocolCounts
from spol.evaluation.loc_accuracy import LOC_IOU
from spol.evaluation.streaming import StreamingEvaluator
from spol.fileio import OUTSIDE_IDS, image_id_path
from spol.progress import Progress
from spol.scoremaps import PROTOCOL_SIZE, ScoreMapError

logger = logging.getLogger(__name__)


class NpyScoreMaps:
    """Score maps saved as ``<root>/<image_id>.npy``, as wsolevaluation's loader names them.

    ``<root>/<image_id without extension>.npy`` is accepted too (the layout the reference's
    docstring describes).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, image_id: str) -> Path:
        """The file holding `image_id`'s map (the first candidate when none exists); always inside the root.

        Ids that would leave the root (absolute, ``..``) map to ``<root>/_outside/...``, where
        ``spol pipeline --save-scoremaps`` writes them (`spol.fileio.image_id_path`).
        """
        first = image_id_path(self.root, image_id, ".npy")
        candidates = [first]
        if first.parent.name != OUTSIDE_IDS or first.parent.parent != self.root:
            candidates.append((self.root / image_id).with_suffix(".npy"))
        return next((p for p in candidates if p.is_file()), candidates[0])

    def __call__(self, image_id: str) -> np.ndarray:
        path = self.path(image_id)
        if not path.is_file():
            raise FileNotFoundError(f"score map of {image_id} missing: expected {path}")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ScoreMapError(f"score map of {image_id}: cannot load {path}: {error}") from error


def evaluate_scoremaps(
    records: Sequence[ImageRecord],
    scoremaps: Callable[[str], np.ndarray],
    *,
    cam_curve_interval: float = 0.01,
    iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
    contours: Sequence[ContourMode] = ("largest",),
    masks: bool = False,
    class_hits: np.ndarray | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """MaxBoxAcc per IoU level, optionally PxAP and Top-k Loc, of a set of maps.

    Args:
        records: The images with ground truth: boxes ``(x0, y0, x1, y1)`` in original pixels and
            ``size=(w, h)`` (read from the image header when None); `mask_paths` and
            `ignore_path` for PxAP.
        scoremaps: ``image_id -> 2-D float map in [0, 1]``; any size (resized bilinearly to
            224 x 224 when not, counted in ``num_resized``).
        cam_curve_interval: Step of the score thresholds ``arange(0, 1, step)``.
        iou_thresholds: IoU levels in percent.
        contours: The contour modes counted: ``("largest",)`` MaxBoxAcc, ``("every",)``
            MaxBoxAccV2's boxes, or both.
        masks: Also compute PxAP from the records' masks.
        class_hits: bool ``[N, 2]`` per record, top-1 / top-5 class right
            (`spol.evaluation.prediction_hits`), for Top-1 / Top-5 / GT-known Loc at the threshold
            best at IoU 50 on these same images (an oracle choice, as MaxBoxAcc's); None: no Loc.
        workers: Threads computing boxes and histograms (the compiled level sweep that
            dominates releases the GIL); None: ``os.cpu_count()``; 0 or 1: this thread only.
            Maps are loaded in the calling thread, in records order.
        progress: Show progress (a bar on a terminal, log lines elsewhere).

    Returns:
        The `EvaluationResult`, with ``correct`` per image. Box metrics need boxes on every
        record; when no record has a box they are left empty (``max_box_acc == {}``), e.g. for
        mask-only datasets.

    Raises:
        ScoreMapError: a map is invalid (names the image id).
        FileNotFoundError: a map or mask is missing.
        ValueError: empty `records`, some but not all records without boxes, class hits without
            boxes, bad settings, or PxAP without foreground / positive predictions.
    """
    contours = _counted_contours(records, contours, masks, class_hits)
    levels = tuple(int(v) for v in iou_thresholds)
    evaluator = StreamingEvaluator(
        cam_curve_interval=cam_curve_interval,
        iou_thresholds=levels,
        contours=contours,
        masks=masks,
        loc_iou=LOC_IOU if LOC_IOU in levels else None,
        workers=workers,
        keep_per_image=True,
    )
    counts = _feed(evaluator, records, scoremaps, class_hits, progress)
    result = counts.result()
    if result.num_resized:
        logger.info(
            "%d of %d score maps were not %dx%d and were resized (bilinear)",
            result.num_resized,
            len(records),
            PROTOCOL_SIZE,
            PROTOCOL_SIZE,
        )
    if counts.loc_mode is None:
        correct = np.zeros((len(levels), len(counts.thresholds), len(records)), dtype=bool)
    else:
        correct = np.moveaxis(evaluator.per_image_correct(counts.loc_mode), 0, -1)
    return replace(result, correct=correct)


def _feed(
    evaluator: StreamingEvaluator,
    records: Sequence[ImageRecord],
    scoremaps: Callable[[str], np.ndarray],
    class_hits: np.ndarray | None,
    progress: bool,
) -> ProtocolCounts:
    """Every record's map, loaded in records order, into `evaluator`; its counts."""
    bar = Progress(len(records), "evaluating score maps", unit="map", enabled=progress)
    try:
        for index, record in enumerate(records):
            hits = None if class_hits is None else class_hits[index : index + 1]
            evaluator.add([record], [scoremaps(record.image_id)], hits)
            bar.update(evaluator.counts.num_images - bar.done)
        return evaluator.finish()
    finally:
        evaluator.close()
        bar.close()


def _counted_contours(
    records: Sequence[ImageRecord],
    contours: Sequence[ContourMode],
    masks: bool,
    class_hits: np.ndarray | None,
) -> tuple[ContourMode, ...]:
    """`contours` when every record has a box, none when none has (masks only); else a ValueError."""
    if len(records) == 0:
        raise ValueError("no images to evaluate; check the split and the metadata")
    with_boxes = [bool(r.boxes) for r in records]
    if any(with_boxes) and not all(with_boxes):
        lacking = records[with_boxes.index(False)].image_id
        raise ValueError(
            f"image {lacking} has no ground-truth box while others have; box accuracy needs a box on every image"
        )
    if not all(with_boxes) and not masks:
        raise ValueError("the images have neither boxes nor (with masks=True) masks; nothing to evaluate")
    if not all(with_boxes) and class_hits is not None:
        raise ValueError("Top-k Loc needs ground-truth boxes; these images have none")
    if class_hits is not None and len(class_hits) != len(records):
        raise ValueError(f"{len(records)} records but {len(class_hits)} class-hit rows")
    return tuple(contours) if all(with_boxes) else ()


__all__ = ["NpyScoreMaps", "evaluate_scoremaps"]
