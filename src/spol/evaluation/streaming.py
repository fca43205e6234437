"""Evaluation as maps arrive, with memory that does not grow with the number of images.

`StreamingEvaluator` takes maps a batch at a time, whether a network makes them
(`spol.pipeline.scoring.score_split`) or they are read from disk (`evaluate_scoremaps`): each map is
checked and brought to the protocol grid (`prepare_scoremap`), its ground-truth boxes too
(`protocol_gt_boxes`), the per-image work runs on worker threads, and only the counts
(`spol.evaluation.ProtocolCounts`) are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from spol.data.images import UnreadableImageError, image_size
from spol.data.records import ImageRecord
from spol.evaluation._pool import MapPool, MapSettings, MapTask
from spol.evaluation.box_accuracy import (
    CONTOUR_MODES,
    DEFAULT_IOU_THRESHOLDS,
    ContourMode,
    cam_thresholds,
    rescale_boxes_to_protocol,
)
from spol.evaluation.counts import ImageOutcome, ProtocolCounts
from spol.evaluation.loc_accuracy import LOC_IOU
from spol.scoremaps import PROTOCOL_SIZE, ScoreMapError, check_scoremap


def prepare_scoremap(scoremap: Any, image_id: str, size: int = PROTOCOL_SIZE) -> tuple[np.ndarray, bool]:
    """Check a map and bring it to the ``size x size`` protocol grid.

    A map of another size is resized with bilinear interpolation (``cv2.INTER_LINEAR``, the
    spec's choice; a convex combination, clipped to [0, 1] against rounding). The map keeps its
    float dtype; the protocol's arithmetic later runs in float64, as the reference's
    ``astype(np.float)`` loader does, so float32 maps give the reference's numbers.

    Returns:
        ``(map, resized)``.

    Raises:
        ScoreMapError: not an array, not 2-D, empty, not float, NaN, or outside [0, 1]; the
            message names `image_id`.
    """
    if not isinstance(scoremap, np.ndarray):
        raise ScoreMapError(f"score map of {image_id}: expected a numpy array, got {type(scoremap).__name__}")
    check_scoremap(scoremap, f"score map of {image_id}")
    if scoremap.size == 0:
        raise ScoreMapError(f"score map of {image_id}: empty array of shape {scoremap.shape}")
    if scoremap.shape == (size, size):
        return scoremap, False
    work = scoremap if scoremap.dtype in (np.float32, np.float64) else scoremap.astype(np.float64)
    resized = cv2.resize(work, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0), True


def _image_size(record: ImageRecord) -> tuple[int, int]:
    """The record's size, else the displayed size from the image header (as `spol.data.image_size`)."""
    if record.size is not None:
        return record.size
    try:
        return image_size(record.path)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"image {record.image_id}: no size in the metadata and no image at {record.path} to read it from"
        ) from error
    except UnreadableImageError as error:
        raise ValueError(f"image {record.image_id}: cannot read the size of {record.path}: {error}") from error


def protocol_gt_boxes(record: ImageRecord) -> np.ndarray:
    """The record's ground-truth boxes on the 224 x 224 protocol grid (`rescale_boxes_to_protocol`).

    Raises:
        ValueError: a box breaks the convention, or the image size cannot be read (names the image).
        FileNotFoundError: no size in the record and no image file to read it from.
    """
    try:
        return rescale_boxes_to_protocol(record.boxes, _image_size(record))
    except ValueError as error:
        raise ValueError(f"image {record.image_id}: {error}") from error


class StreamingEvaluator:
    """Counts a method's protocol numbers over maps given a batch at a time; no map is kept.

    Each map is checked like any score map (2-D float in [0, 1]; another size is resized to 224);
    boxes in the counted contour modes and, with `masks`, PxAP histograms are computed on
    `workers` threads while the caller produces the next batch.

    Args:
        cam_curve_interval: step of the score thresholds.
        iou_thresholds: IoU levels in percent.
        contours: contour modes whose boxes are counted (every record then needs a box); none
            for masks only.
        masks: count PxAP (every record needs its masks).
        loc_iou: IoU level of GT-known / Top-k Loc (`ProtocolCounts`), or None.
        workers: evaluation threads; None: ``os.cpu_count()``; 0 or 1: the calling thread.
        keep_per_image: also keep each image's box correctness (`per_image_correct`); small
            splits only.
    """

    def __init__(
        self,
        *,
        cam_curve_interval: float = 0.01,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        contours: Sequence[ContourMode] = CONTOUR_MODES,
        masks: bool = False,
        loc_iou: int | None = LOC_IOU,
        workers: int | None = None,
        keep_per_image: bool = False,
    ) -> None:
        thresholds = cam_thresholds(cam_curve_interval)
        self.counts = ProtocolCounts(thresholds, iou_thresholds, contours=contours, masks=masks, loc_iou=loc_iou)
        settings = MapSettings(thresholds, self.counts.iou_thresholds, self.counts.contours, masks)
        self._pool = MapPool(settings, (os.cpu_count() or 1) if workers is None else workers)
        self._per_image: list[Mapping[ContourMode, np.ndarray]] | None = [] if keep_per_image else None

    def add(
        self,
        records: Sequence[ImageRecord],
        scoremaps: np.ndarray | Sequence[np.ndarray],
        class_hits: np.ndarray | None = None,
    ) -> None:
        """Add a batch: the records, their maps (``B x H x W``, or B maps of any sizes) and their classes.

        Args:
            records: the images.
            scoremaps: their maps, in the records' order.
            class_hits: bool ``[B, 2]``: the true class is first / among the five first
                (`spol.evaluation.top_k_hits`); None without classes.

        Raises:
            ScoreMapError: an invalid map (names the image).
            ValueError: a record without a ground-truth box (when boxes are counted), or lengths that disagree.
        """
        rows = [len(scoremaps)] + ([] if class_hits is None else [len(class_hits)])
        if any(n != len(records) for n in rows):
            raise ValueError(f"{len(records)} records but {rows} maps / class rows")
        boxes = bool(self.counts.contours)
        tasks = []
        for i, record in enumerate(records):
            if boxes and not record.boxes:
                raise ValueError(f"image {record.image_id} has no ground-truth box; box accuracy needs one")
            scoremap, resized = prepare_scoremap(scoremaps[i], record.image_id)
            hits = None if class_hits is None else (bool(class_hits[i][0]), bool(class_hits[i][1]))
            gt_boxes = protocol_gt_boxes(record) if boxes else None
            tasks.append(
                MapTask(record.image_id, scoremap, gt_boxes, record.mask_paths, record.ignore_path, hits, resized)
            )
        for outcome in self._pool.submit(tasks):
            self._count(outcome)

    def _count(self, outcome: ImageOutcome) -> None:
        self.counts.add(outcome)
        if self._per_image is not None:
            self._per_image.append(outcome.correct)

    def finish(self) -> ProtocolCounts:
        """Wait for the outstanding images and return the counts."""
        for outcome in self._pool.finish():
            self._count(outcome)
        return self.counts

    def close(self) -> None:
        """Stop the worker threads without counting what is outstanding (on errors)."""
        self._pool.close()

    def per_image_correct(self, mode: ContourMode) -> np.ndarray:
        """Each counted image's box correctness in contour `mode`, bool ``[N, num_iou, T]`` in the order added.

        Raises:
            ValueError: made without `keep_per_image`, or `mode` not counted.
        """
        if self._per_image is None:
            raise ValueError("per-image results were not kept; make the evaluator with keep_per_image=True")
        if mode not in self.counts.contours:
            raise ValueError(f"boxes of the {mode!r} contour mode were not counted")
        shape = (0, len(self.counts.iou_thresholds), len(self.counts.thresholds))
        if not self._per_image:
            return np.zeros(shape, dtype=bool)
        return np.stack([correct[mode] for correct in self._per_image])


__all__ = ["StreamingEvaluator", "prepare_scoremap", "protocol_gt_boxes"]
