"""MaxBoxAcc and MaxBoxAccV2 (Choe et al., CVPR 2020), exactly as clovaai/wsolevaluation computes them.

Conventions (wsolevaluation's ``evaluation.py``, ``BoxEvaluator``):

* Ground-truth boxes are rescaled to the protocol size with ``int(x * 224 / width)``.
* A score map ``s`` in [0, 1] becomes ``u = uint8(s * 255)`` (truncation, in float64).
* Thresholds ``t`` run over ``numpy.arange(0, 1, interval)``; the mask at ``t`` is
  ``u > int(t * max(u))``.
* Boxes come from ``cv2.findContours(mask, RETR_TREE, CHAIN_APPROX_SIMPLE)``: the contour of
  largest ``cv2.contourArea`` (first on ties) in single-contour mode, every contour in
  multi-contour mode; no contour gives the box ``[0, 0, 0, 0]``. A contour's box is
  ``(x, y, min(x + w, W - 1), min(y + h, H - 1))`` from ``cv2.boundingRect``
  (`spol.scoremaps.protocol_box`).
* ``IoU`` uses inclusive pixel areas ``(x1 - x0 + 1) * (y1 - y0 + 1)``; an image is correct at
  ``(t, delta)`` when its best IoU is ``>= delta / 100``.
* ``MaxBoxAcc(delta) = max_t 100 * correct(t, delta) / N``; MaxBoxAccV2 is the mean over
  ``delta in {30, 50, 70}`` in multi-contour mode (both from the counts of
  `spol.evaluation.ProtocolCounts`).

Speed without changing a single box: thresholds that give the same cut share one mask, and the
masks of all cuts are nested, so their boxes come from one compiled sweep over the map's levels
(`spol.evaluation.level_components`), which gives OpenCV's boxes exactly. The rare masks where
the sweep cannot rank the largest contour (components with holes of close size) are traced with
``cv2.findContours`` on the bounding box of the mask's pixels only (``offset`` restores
full-image coordinates; OpenCV pads the image border with zeros itself, so the crop changes no
contour). ``benchmarks/box_accuracy_speed.py`` measures the gain against the plain
per-threshold loop: 4-8x on smooth 224 x 224 maps with two workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numba
import numpy as np

from spol.data.records import Box
from spol.evaluation.level_components import contour_boxes_at_cuts
from spol.scoremaps import EMPTY_PROTOCOL_BOX, PROTOCOL_SIZE, check_scoremap, protocol_box

DEFAULT_IOU_THRESHOLDS: tuple[int, ...] = (30, 50, 70)
"""IoU levels (percent) of MaxBoxAccV2."""

ContourMode = Literal["largest", "every"]
"""Which contours give an image's boxes: the largest one (MaxBoxAcc, GT-known Loc) or every one (MaxBoxAccV2)."""
CONTOUR_MODES: tuple[ContourMode, ...] = ("largest", "every")


def cam_thresholds(interval: float = 0.01) -> np.ndarray:
    """The score-map thresholds ``numpy.arange(0, 1, interval)`` (float64), 100 for the default 0.01.

    Raises:
        ValueError: `interval` is not in (0, 1).
    """
    if not 0 < interval < 1:
        raise ValueError(f"cam_curve_interval must lie in (0, 1), got {interval}; 0.01 is the protocol's default")
    return np.arange(0, 1, interval)


def rescale_boxes_to_protocol(
    boxes: Sequence[Box] | np.ndarray, size: tuple[int, int], resize: int = PROTOCOL_SIZE
) -> np.ndarray:
    """Ground-truth boxes from original pixels to the ``resize x resize`` protocol grid.

    Args:
        boxes: ``(x0, y0, x1, y1)`` boxes in original-image pixels.
        size: ``(width, height)`` of the original image.
        resize: Side of the protocol grid.

    Returns:
        int64 array ``[num_boxes, 4]``: ``int(x0 * resize / width)``, ``int(y0 * resize / height)``,
        and likewise for ``x1, y1`` (float64 arithmetic, truncation toward zero).

    Raises:
        ValueError: a box is negative or has ``x1 < x0`` / ``y1 < y0``, or `size` is not positive.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    check_box_convention(array)
    # Same operation order as the reference: x * new_size / size, then int().
    scale = np.array([resize, resize, resize, resize], dtype=np.float64)
    divisor = np.array([width, height, width, height], dtype=np.float64)
    return np.trunc(array * scale / divisor).astype(np.int64)


def check_box_convention(boxes: np.ndarray) -> None:
    """Raise ValueError unless every ``(x0, y0, x1, y1)`` row is non-negative with ``x1 >= x0``, ``y1 >= y0``."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    if (boxes < 0).any():
        raise ValueError(f"box coordinates must be non-negative, got {boxes[(boxes < 0).any(1)][0].tolist()}")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        bad = boxes[(boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])][0]
        raise ValueError(f"boxes must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0, got {bad.tolist()}")


@numba.njit(cache=True, nogil=True, inline="always")
def _pair_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes with inclusive areas; 0 where the union is not positive."""
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    intersection = inter_w * inter_h
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - intersection
    return intersection / union if union > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def _iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    out = np.empty((boxes_a.shape[0], boxes_b.shape[0]), np.float64)
    for i in range(boxes_a.shape[0]):
        for j in range(boxes_b.shape[0]):
            out[i, j] = _pair_iou(boxes_a[i], boxes_b[j])
    return out


@numba.njit(cache=True, nogil=True)
def _best_iou_per_segment(boxes: np.ndarray, offsets: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU of ``boxes[offsets[i]:offsets[i + 1]]`` against any of `gt`, per segment."""
    best = np.full(offsets.shape[0] - 1, -1.0)
    for i in range(offsets.shape[0] - 1):
        for k in range(offsets[i], offsets[i + 1]):
            for j in range(gt.shape[0]):
                best[i] = max(best[i], _pair_iou(boxes[k], gt[j]))
    return best


def compute_iou(boxes_a: np.ndarray | Sequence[Box], boxes_b: np.ndarray | Sequence[Box]) -> np.ndarray:
    """IoU of every pair with inclusive pixel areas: ``(x1 - x0 + 1) * (y1 - y0 + 1)``.

    Args:
        boxes_a: ``[A, 4]`` boxes ``(x0, y0, x1, y1)``, integer pixel coordinates.
        boxes_b: ``[B, 4]`` boxes.

    Returns:
        float64 ``[A, B]``; 0 where the union is not positive.

    Raises:
        ValueError: a box is negative or has ``x1 < x0`` or ``y1 < y0``.
    """
    a = np.asarray(boxes_a).reshape(-1, 4)
    b = np.asarray(boxes_b).reshape(-1, 4)
    check_box_convention(a)
    check_box_convention(b)
    return _iou(np.ascontiguousarray(a), np.ascontiguousarray(b))


@numba.njit(cache=True, nogil=True)
def _checked_uint8(scoremap: np.ndarray) -> tuple[np.ndarray, bool]:
    """`scoremap_to_uint8` and whether every value lies in [0, 1], in one pass (hot in evaluation)."""
    values = scoremap.ravel()
    u = np.empty(values.shape[0], np.uint8)
    valid = True
    for i in range(values.shape[0]):
        value = np.float64(values[i])
        valid &= (value >= 0.0) & (value <= 1.0)  # False for NaN
        u[i] = np.uint8(min(max(value, 0.0), 1.0) * 255.0)  # the clamp only matters for invalid maps
    return u.reshape(scoremap.shape), valid


class _Levels:
    """A map's 8-bit levels and its distinct cuts, with the boxes of each cut's mask."""

    def __init__(self, scoremap: np.ndarray, thresholds: np.ndarray) -> None:
        if scoremap.ndim != 2 or scoremap.dtype not in (np.float32, np.float64):
            check_scoremap(scoremap)  # raises unless another float dtype, converted exactly
            scoremap = scoremap.astype(np.float64)
        if scoremap.size == 0:
            raise ValueError(f"score map is empty (shape {scoremap.shape})")
        self.u, valid = _checked_uint8(np.ascontiguousarray(scoremap))
        if not valid:
            check_scoremap(scoremap)  # raises, naming the problem
        self.height, self.width = self.u.shape
        top = int(self.u.max())
        # The reference's int(t * np.max(u)): float64 product, truncated. Every cut below 0 gives
        # the same mask (all pixels), and a cut at the maximum or above the empty mask.
        cuts = np.clip((np.asarray(thresholds, dtype=np.float64) * top).astype(np.int64), -1, top)
        distinct, inverse = np.unique(cuts, return_inverse=True)
        self.cuts = distinct[::-1]
        """Distinct cuts, decreasing (the order of `contour_boxes_at_cuts`)."""
        self.index = len(distinct) - 1 - inverse.reshape(-1)
        """Each threshold's position in `cuts`."""
        self.num_empty = int((self.cuts == top).sum())
        """Leading cuts whose mask is empty (at most one)."""

    def contour_boxes(self, cut: int, pixel_box: np.ndarray, multi_contour: bool) -> np.ndarray:
        """Boxes ``[k, 4]`` of the non-empty mask ``u > cut`` from OpenCV, traced on the mask's `pixel_box` only."""
        x0, y0, x1, y1 = pixel_box.tolist()
        mask = cv2.threshold(self.u[y0 : y1 + 1, x0 : x1 + 1], cut, 1, cv2.THRESH_BINARY)[1]
        # The largest of RETR_TREE's contours is a top-level one, listed in the same order by
        # RETR_EXTERNAL, which skips tracing holes (a hole ties its ring only when listed after it).
        mode = cv2.RETR_TREE if multi_contour else cv2.RETR_EXTERNAL
        contours = cv2.findContours(mask, mode, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[0]
        if not multi_contour and len(contours) > 1:
            contours = (max(contours, key=cv2.contourArea),)  # max() keeps the first on ties
        out = np.empty((len(contours), 4), dtype=np.int64)
        for i, contour in enumerate(contours):
            x, y, w, h = cv2.boundingRect(contour)
            out[i] = protocol_box(x, y, w, h, self.width, self.height)
        return out

    def boxes(self, multi_contour: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets, boxes)``: the boxes of ``cuts[i]`` are ``boxes[offsets[i]:offsets[i + 1]]``, at least one.

        An empty mask has the protocol's ``[0, 0, 0, 0]``.
        """
        nonempty = self.cuts[self.num_empty :]
        needs_opencv, offsets, boxes = contour_boxes_at_cuts(self.u, nonempty, multi_contour)
        for i in np.flatnonzero(needs_opencv).tolist():
            # A non-empty mask: one pixel box in, one contour box out (only single-contour mode gets here).
            (boxes[offsets[i]],) = self.contour_boxes(int(nonempty[i]), boxes[offsets[i]], multi_contour)
        if self.num_empty:
            offsets = np.concatenate([[0], offsets + 1])
            boxes = np.concatenate([np.array([EMPTY_PROTOCOL_BOX], dtype=np.int64), boxes])
        return offsets, boxes


def scoremap_to_boxes(
    scoremap: np.ndarray, thresholds: Sequence[float] | np.ndarray, *, multi_contour: bool = False
) -> list[np.ndarray]:
    """The protocol's estimated boxes at every threshold.

    Args:
        scoremap: 2-D float map in [0, 1] (any size; boxes are clipped to its ``W - 1, H - 1``).
        thresholds: Score thresholds in [0, 1), e.g. `cam_thresholds`.
        multi_contour: Every contour's box (MaxBoxAccV2) instead of the largest contour's; their
            order is not OpenCV's (the protocol only takes the best IoU over them).

    Returns:
        One int64 array ``[k, 4]`` of ``(x0, y0, x1, y1)`` boxes per threshold; ``[[0, 0, 0, 0]]``
        where the mask has no contour.

    Raises:
        spol.scoremaps.ScoreMapError: the map is not 2-D float, has NaN or values outside [0, 1].
    """
    levels = _Levels(np.asarray(scoremap), np.asarray(thresholds))
    offsets, boxes = levels.boxes(multi_contour)
    per_cut = [boxes[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]
    return [per_cut[i] for i in levels.index.tolist()]


def correct_at_thresholds(
    scoremap: np.ndarray,
    gt_boxes: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
    *,
    multi_contour: bool = False,
) -> np.ndarray:
    """Whether the map localizes the object at every (IoU level, threshold).

    Args:
        scoremap: 2-D float map in [0, 1] on the grid of `gt_boxes` (224 x 224 in the protocol).
        gt_boxes: int ``[G, 4]`` ground-truth boxes on that grid (`rescale_boxes_to_protocol`), G >= 1.
        thresholds: Score thresholds, e.g. `cam_thresholds`.
        iou_thresholds: IoU levels in percent.
        multi_contour: MaxBoxAccV2's every-contour mode.

    Returns:
        bool ``[len(iou_thresholds), len(thresholds)]``: best IoU over (estimated box, gt box)
        pairs ``>= level / 100``.

    Raises:
        ValueError: no ground-truth box, or a box breaking the convention.
        spol.scoremaps.ScoreMapError: invalid map.
    """
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    if len(gt) == 0:
        raise ValueError("an image needs at least one ground-truth box for box accuracy")
    check_box_convention(gt)
    levels = _Levels(np.asarray(scoremap), np.asarray(thresholds))
    offsets, boxes = levels.boxes(multi_contour)
    best = _best_iou_per_segment(boxes, offsets, gt)  # per distinct cut
    iou_levels = np.asarray(iou_thresholds, dtype=np.float64)[:, None] / 100
    return best[levels.index][None, :] >= iou_levels


def compile_kernels() -> None:
    """Compile the box computation now, or load it from numba's on-disk cache (about 7 s the first time).

    Called before starting worker threads, so that the first chunks do not all wait for the compiler.
    """
    ring = np.full((5, 5), 0.5)
    ring[1:4, 1:4] = 1.0
    ring[2, 2] = 0.0  # a hole: the background sweep runs too
    for multi_contour in (False, True):
        correct_at_thresholds(ring, np.array([[0, 0, 2, 2]]), cam_thresholds(0.1), multi_contour=multi_contour)
