"""Evaluation as maps are produced, with memory that does not grow with the number of images.

The reference protocol's evaluators accumulate, then compute: each image adds to counters and its map
is dropped. `ProtocolCounts` holds every counter a method's metrics need (box hits per IoU level and
threshold for MaxBoxAcc and MaxBoxAccV2, PxAP histograms, Top-1 / Top-5 Loc hits per threshold,
classification hits); counters of several processes add up, so a sharded run sums them
(`ProtocolCounts.summed`) instead of gathering maps. `StreamingEvaluator` feeds batches of maps to
the per-image work on worker threads and keeps only the counts.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spol.data.records import ImageRecord
from spol.evaluation._pool import MapOutcome, MapPool, MapSettings, MapTask
from spol.evaluation.box_accuracy import DEFAULT_IOU_THRESHOLDS, BoxAccuracy, cam_thresholds
from spol.evaluation.evaluate import prepare_scoremap, protocol_gt_boxes
from spol.evaluation.loc_accuracy import LOC_IOU
from spol.evaluation.pixel_accuracy import PixelAccuracy

TOP_K = 5

class ProtocolCounts:
    """Sum-reducible counts of one method over one split.

    Args:
        thresholds: the score thresholds (`cam_thresholds`).
        iou_thresholds: IoU levels in percent; must include `loc_iou`.
        masks: also count PxAP histograms.
        loc_iou: IoU level of GT-known / Top-k Loc and of the threshold choice.
    """

    def __init__(
        self,
        thresholds: np.ndarray,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        *,
        masks: bool = False,
        loc_iou: int = LOC_IOU,
    ) -> None:
        self.box = BoxAccuracy(thresholds, iou_thresholds, keep_per_image=False)
        """Largest-contour boxes (MaxBoxAcc); it checks and converts the thresholds."""
        self.thresholds, self.iou_thresholds = self.box.thresholds, self.box.iou_thresholds
        if loc_iou not in self.iou_thresholds:
            raise ValueError(
                f"iou_thresholds must include {loc_iou}: GT-known and Top-k Loc use the threshold best at "
                f"IoU {loc_iou / 100} (got {list(self.iou_thresholds)})"
            )
        self.loc_iou = loc_iou
        self._loc_row = self.iou_thresholds.index(loc_iou)
        self.box_v2 = BoxAccuracy(self.thresholds, self.iou_thresholds, multi_contour=True, keep_per_image=False)
        """Every-contour boxes (MaxBoxAccV2)."""
        self.pixel = PixelAccuracy(self.thresholds) if masks else None
        self.top1_loc_hits = np.zeros(len(self.thresholds), dtype=np.int64)
        """Per threshold: largest-contour box right at `loc_iou` and top-1 class right."""
        self.top5_loc_hits = np.zeros(len(self.thresholds), dtype=np.int64)
        self.cls_top1_hits = 0
        self.num_classified = 0

    @property
    def num_images(self) -> int:
        """Images counted."""
        return self.box.num_images

    def add(self, outcome: MapOutcome, class_hits: tuple[bool, bool] | None) -> None:
        """Add one image: its per-image outcome (both contour modes) and its classification.

        `class_hits`: whether its true class is the classifier's first / among its five first (None
        without classes).
        """
        if outcome.correct is None or len(outcome.correct) != 2:
            raise ValueError("ProtocolCounts needs the box outcome of both contour modes (largest, every)")
        single, multi = outcome.correct
        self.box.add(single)
        self.box_v2.add(multi)
        if self.pixel is not None:
            if outcome.histograms is None:
                raise ValueError("ProtocolCounts counts PxAP but the outcome has no mask histograms")
            self.pixel.add(*outcome.histograms)
        if class_hits is not None:
            top1_hit, top5_hit = (bool(hit) for hit in class_hits)
            right = single[self._loc_row]
            self.top1_loc_hits += right & top1_hit
            self.top5_loc_hits += right & top5_hit
            self.cls_top1_hits += top1_hit
            self.num_classified += 1

    def as_vector(self) -> np.ndarray:
        """Every counter in one int64 vector (the layout `summed` reads back)."""
        parts = [
            np.array([self.box.num_images, self.cls_top1_hits, self.num_classified], dtype=np.int64),
            self.box.hits.ravel(),
            self.box_v2.hits.ravel(),
            self.top1_loc_hits,
            self.top5_loc_hits,
        ]
        if self.pixel is not None:
            parts += [np.array([self.pixel.num_images]), self.pixel.foreground_hist, self.pixel.background_hist]
        return np.concatenate(parts).astype(np.int64)

    def summed(self, reduce: Callable[[np.ndarray], np.ndarray]) -> ProtocolCounts:
        """New counts from ``reduce(vector of every counter)``.

        E.g. a sum over processes (`spol.runtime.distributed.all_reduce_sum`).
        """
        vector = np.asarray(reduce(self.as_vector()), dtype=np.int64)
        out = ProtocolCounts(self.thresholds, self.iou_thresholds, masks=self.pixel is not None, loc_iou=self.loc_iou)
        num_images, out.cls_top1_hits, out.num_classified = (int(v) for v in vector[:3])
        cursor = 3
        size = self.box.hits.size
        out.box.add_counts(vector[cursor : cursor + size].reshape(self.box.hits.shape), num_images)
        out.box_v2.add_counts(vector[cursor + size : cursor + 2 * size].reshape(self.box.hits.shape), num_images)
        cursor += 2 * size
        steps = len(self.thresholds)
        out.top1_loc_hits = vector[cursor : cursor + steps].copy()
        out.top5_loc_hits = vector[cursor + steps : cursor + 2 * steps].copy()
        cursor += 2 * steps
        if out.pixel is not None:
            bins = len(out.pixel.foreground_hist)
            out.pixel.num_images = int(vector[cursor])
            out.pixel.foreground_hist = vector[cursor + 1 : cursor + 1 + bins].copy()
            out.pixel.background_hist = vector[cursor + 1 + bins : cursor + 1 + 2 * bins].copy()
        return out

    def best_threshold(self) -> float:
        """The first threshold with the best largest-contour box accuracy at `loc_iou` (choose it on val)."""
        return self.box.best_threshold()[self.loc_iou]

    def summary(self, threshold: float) -> dict[str, Any]:
        """The method's entry of ``metrics.json`` at `threshold` (chosen on another split).

        Keys: ``top1_loc``, ``top5_loc``, ``gt_known_loc`` (at `threshold`, IoU >= `loc_iou`),
        ``max_box_acc`` (``{"30": ..}``), ``max_box_acc_v2``, ``pxap`` (None without masks),
        ``cls_top1`` (None without classes) and ``threshold``; percentages.

        Raises:
            ValueError: no image was counted.
        """
        n = self.num_images
        if n == 0:
            raise ValueError("no image was evaluated")
        t_index = int(np.argmin(np.abs(self.thresholds - threshold)))
        right = int(self.box.hits[self._loc_row, t_index])
        classified = self.num_classified == n
        max_v2 = self.box_v2.max_box_acc()
        return {
            "top1_loc": 100.0 * float(self.top1_loc_hits[t_index]) / n if classified else None,
            "top5_loc": 100.0 * float(self.top5_loc_hits[t_index]) / n if classified else None,
            "gt_known_loc": 100.0 * float(right) / n,
            "max_box_acc": {str(k): v for k, v in self.box.max_box_acc().items()},
            "max_box_acc_v2": float(np.mean(list(max_v2.values()))),
            "pxap": self.pixel.compute() if self.pixel is not None else None,
            # 100 * (hits / n), the order of the classification accuracy's float arithmetic.
            "cls_top1": 100.0 * (self.cls_top1_hits / n) if classified else None,
            "threshold": float(threshold),
        }


class StreamingEvaluator:
    """Counts a method's protocol numbers over maps given a batch at a time; no map is kept.

    Each map is checked like any score map (2-D float in [0, 1]; another size is resized to 224);
    boxes in both contour modes and, with `masks`, PxAP histograms are computed on `workers`
    threads while the caller produces the next batch.

    Args:
        cam_curve_interval: step of the score thresholds.
        iou_thresholds: IoU levels in percent.
        masks: count PxAP (every record needs its masks).
        workers: evaluation threads; None: ``os.cpu_count()``; 0 or 1: the calling thread.
        keep_every_contour: also keep each image's every-contour (MaxBoxAccV2) correctness, bool
            ``[num_iou, num_thresholds]``, in `every_contour` (in the order the images were added),
            for a bootstrap over images; small splits only.
    """

    def __init__(
        self,
        *,
        cam_curve_interval: float = 0.01,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        masks: bool = False,
        workers: int | None = None,
        keep_every_contour: bool = False,
    ) -> None:
        thresholds = cam_thresholds(cam_curve_interval)
        self.counts = ProtocolCounts(thresholds, iou_thresholds, masks=masks)
        settings = MapSettings(thresholds, self.counts.iou_thresholds, (False, True), masks)
        self._pool = MapPool(settings, (os.cpu_count() or 1) if workers is None else workers)
        self._waiting: deque[tuple[bool, bool] | None] = deque()
        self.every_contour: list[np.ndarray] | None = [] if keep_every_contour else None

    def add(
        self,
        records: Sequence[ImageRecord],
        scoremaps: np.ndarray,
        top5: np.ndarray | None = None,
        *,
        class_hits: np.ndarray | None = None,
    ) -> None:
        """Add a batch: the records, their ``B x H x W`` maps and, when known, their classes.

        Classes come as ``B x 5`` top classes (best first), or as `class_hits`, bool ``B x 2``:
        the true class is first / among the five first (a classifier's saved results).

        Raises:
            ScoreMapError: an invalid map (names the image).
            ValueError: a record without a ground-truth box, or lengths that disagree.
        """
        rows = [len(a) for a in (scoremaps, top5, class_hits) if a is not None]
        if any(n != len(records) for n in rows) or (top5 is not None and class_hits is not None):
            raise ValueError(f"{len(records)} records but {rows} maps / class rows (give top5 or class_hits)")
        tasks = []
        for i, record in enumerate(records):
            if not record.boxes:
                raise ValueError(f"image {record.image_id} has no ground-truth box; box accuracy needs one")
            scoremap, _ = prepare_scoremap(scoremaps[i], record.image_id)
            tasks.append(
                MapTask(record.image_id, scoremap, protocol_gt_boxes(record), record.mask_paths, record.ignore_path)
            )
            if top5 is not None:
                self._waiting.append((bool(top5[i][0] == record.label), bool((top5[i][:TOP_K] == record.label).any())))
            else:
                self._waiting.append(None if class_hits is None else (bool(class_hits[i][0]), bool(class_hits[i][1])))
        for outcome in self._pool.submit(tasks):
            self._count(outcome)

    def _count(self, outcome: MapOutcome) -> None:
        self.counts.add(outcome, self._waiting.popleft())
        if self.every_contour is not None and outcome.correct is not None:
            self.every_contour.append(outcome.correct[1])

    def finish(self) -> ProtocolCounts:
        """Wait for the outstanding images and return the counts."""
        for outcome in self._pool.finish():
            self._count(outcome)
        return self.counts

    def close(self) -> None:
        """Stop the worker threads without counting what is outstanding (on errors)."""
        self._pool.close()


__all__ = ["ProtocolCounts", "StreamingEvaluator"]
