"""Evaluate score maps of a set of images under the WSOL protocol: MaxBoxAcc(V2) and PxAP.

`evaluate_scoremaps` takes records (ground truth in original pixels) and a function giving each
image's score map, checks and resizes each map to the protocol grid (224 x 224), and runs the
box and mask metrics of `spol.evaluation.box_accuracy` and `spol.evaluation.pixel_accuracy`,
optionally on worker threads.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from spol.data.images import UnreadableImageError, image_size
from spol.data.records import ImageRecord
from spol.evaluation._pool import MapPool, MapSettings, MapTask
from spol.evaluation.box_accuracy import DEFAULT_IOU_THRESHOLDS, BoxAccuracy, cam_thresholds, rescale_boxes_to_protocol
from spol.evaluation.pixel_accuracy import PixelAccuracy
from spol.fileio import OUTSIDE_IDS, image_id_path
from spol.scoremaps import PROTOCOL_SIZE, ScoreMapError, check_scoremap

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Numbers of one evaluation.

    Attributes:
        num_images: Images evaluated.
        thresholds: The score thresholds, float64 ``[T]``.
        iou_thresholds: IoU levels in percent.
        multi_contour: True for MaxBoxAccV2's every-contour boxes.
        max_box_acc: ``{iou level: percent}``; empty when the images have no boxes.
        best_threshold: ``{iou level: first threshold reaching the max}``; empty without boxes.
        max_box_acc_mean: Mean of `max_box_acc` (MaxBoxAccV2 in multi-contour mode), or None.
        pxap: PxAP in percent, or None when masks were not evaluated.
        correct: bool ``[num_iou, T, num_images]`` in records order (all False without boxes).
        box_accuracy: float64 ``[num_iou, T]`` percent per threshold, or None without boxes.
        num_resized: Maps that were not 224 x 224 and were resized (bilinear).
        image_ids: The records' image ids, the order of `correct`'s last axis.
    """

    num_images: int
    thresholds: np.ndarray
    iou_thresholds: tuple[int, ...]
    multi_contour: bool
    max_box_acc: dict[int, float]
    best_threshold: dict[int, float]
    max_box_acc_mean: float | None
    pxap: float | None
    correct: np.ndarray
    box_accuracy: np.ndarray | None = None
    num_resized: int = 0
    image_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The summary object of ``spol evaluate-maps --json`` (IoU levels as string keys).

        Keys: ``num_images``, ``max_box_acc``, ``max_box_acc_mean``, ``best_cam_threshold`` (the box
        ones null without boxes), and ``pxap`` when masks were evaluated; nothing else, so that the
        object compares key by key with the reference's numbers (``num_resized`` is reported apart).
        """
        out: dict[str, Any] = {
            "num_images": self.num_images,
            "max_box_acc": {str(k): v for k, v in self.max_box_acc.items()} if self.max_box_acc else None,
            "max_box_acc_mean": self.max_box_acc_mean,
            "best_cam_threshold": {str(k): v for k, v in self.best_threshold.items()} if self.best_threshold else None,
        }
        if self.pxap is not None:
            out["pxap"] = self.pxap
        return out


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


def evaluate_scoremaps(
    records: Sequence[ImageRecord],
    scoremaps: Callable[[str], np.ndarray],
    *,
    cam_curve_interval: float = 0.01,
    iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
    multi_contour: bool = False,
    masks: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """MaxBoxAcc per IoU level (V2 with `multi_contour`) and optionally PxAP of a set of maps.

    Args:
        records: The images with ground truth: boxes ``(x0, y0, x1, y1)`` in original pixels and
            ``size=(w, h)`` (read from the image header when None); `mask_paths` and
            `ignore_path` for PxAP.
        scoremaps: ``image_id -> 2-D float map in [0, 1]``; any size (resized bilinearly to
            224 x 224 when not, counted in ``num_resized``).
        cam_curve_interval: Step of the score thresholds ``arange(0, 1, step)``.
        iou_thresholds: IoU levels in percent.
        multi_contour: Every contour's box counts (MaxBoxAccV2); else the largest contour's.
        masks: Also compute PxAP from the records' masks.
        workers: Threads computing boxes and histograms (the compiled level sweep that
            dominates releases the GIL); None: ``os.cpu_count()``; 0 or 1: this thread only.
            Maps are loaded in the calling thread, in records order.
        progress: Show a tqdm progress bar on stderr.

    Returns:
        The `EvaluationResult`. Box metrics need boxes on every record; when no record has a
        box they are left empty (``max_box_acc == {}``), e.g. for mask-only datasets.

    Raises:
        ScoreMapError: a map is invalid (names the image id).
        FileNotFoundError: a map or mask is missing.
        ValueError: empty `records`, some but not all records without boxes, bad settings, or
            PxAP without foreground / positive predictions.
    """
    if len(records) == 0:
        raise ValueError("no images to evaluate; check the split and the metadata")
    thresholds = cam_thresholds(cam_curve_interval)
    iou_levels = tuple(int(v) for v in iou_thresholds)
    box_acc = BoxAccuracy(thresholds, iou_levels, multi_contour=multi_contour)
    with_boxes = [bool(r.boxes) for r in records]
    if any(with_boxes) and not all(with_boxes):
        lacking = records[with_boxes.index(False)].image_id
        raise ValueError(
            f"image {lacking} has no ground-truth box while others have; box accuracy needs a box on every image"
        )
    evaluate_boxes = all(with_boxes)
    if not evaluate_boxes and not masks:
        raise ValueError("the images have neither boxes nor (with masks=True) masks; nothing to evaluate")
    pixel_acc = PixelAccuracy(thresholds) if masks else None
    settings = MapSettings(thresholds, iou_levels, (multi_contour,), masks)

    num_resized = 0

    def tasks() -> Iterator[MapTask]:
        nonlocal num_resized
        for record in records:
            scoremap, resized = prepare_scoremap(scoremaps(record.image_id), record.image_id)
            num_resized += resized
            gt = protocol_gt_boxes(record) if evaluate_boxes else None
            yield MapTask(record.image_id, scoremap, gt, record.mask_paths, record.ignore_path)

    if workers is None:
        workers = os.cpu_count() or 1
    pool = MapPool(settings, workers)
    bar = tqdm(
        total=len(records), desc="evaluating score maps", unit="map", disable=None if progress else True, leave=False
    )
    try:
        for outcome in itertools.chain(pool.submit(tasks()), pool.finish()):
            if outcome.correct is not None:
                box_acc.add(outcome.correct[0])
            if outcome.histograms is not None and pixel_acc is not None:
                pixel_acc.add(*outcome.histograms)
            bar.update(1)
    finally:
        pool.close()
        bar.close()
    if num_resized:
        logger.info(
            "%d of %d score maps were not %dx%d and were resized (bilinear)",
            num_resized,
            len(records),
            PROTOCOL_SIZE,
            PROTOCOL_SIZE,
        )

    if evaluate_boxes:
        max_acc = box_acc.max_box_acc()
        best = box_acc.best_threshold()
        mean = float(np.mean(list(max_acc.values())))
        correct_all = box_acc.correct
        accuracy = box_acc.accuracy()
    else:
        max_acc, best, mean, accuracy = {}, {}, None, None
        correct_all = np.zeros((len(iou_levels), len(thresholds), len(records)), dtype=bool)
    return EvaluationResult(
        num_images=len(records),
        thresholds=thresholds,
        iou_thresholds=iou_levels,
        multi_contour=multi_contour,
        max_box_acc=max_acc,
        best_threshold=best,
        max_box_acc_mean=mean,
        pxap=pixel_acc.compute() if pixel_acc is not None else None,
        correct=correct_all,
        box_accuracy=accuracy,
        num_resized=num_resized,
        image_ids=[r.image_id for r in records],
    )
