"""The protocol's one accumulator: named counters that add up over images and over processes.

The reference's evaluators accumulate, then compute: each image adds to counters and its map is
dropped. `ProtocolCounts` holds every counter the numbers need, each a named int64 array: correct
boxes per (IoU level, threshold) for each contour mode (MaxBoxAcc, MaxBoxAccV2), PxAP's score
histograms, Top-1 / Top-5 Loc hits per threshold and classification hits. Counters of several
processes add up name by name (`ProtocolCounts.summed`), so a sharded run never gathers maps.
`ProtocolCounts.result` turns the counters into an `EvaluationResult`, the one summary that
``metrics.json`` and ``spol evaluate-maps`` print.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spol.evaluation.box_accuracy import CONTOUR_MODES, DEFAULT_IOU_THRESHOLDS, ContourMode
from spol.evaluation.loc_accuracy import LOC_IOU
from spol.evaluation.pixel_accuracy import compute_pxap

Counters = dict[str, np.ndarray]
"""Counter name -> int64 array (0-d for plain counts)."""


@dataclass(frozen=True)
class ImageOutcome:
    """What one image adds to the counts.

    Attributes:
        correct: per counted contour mode, bool ``[num_iou, num_thresholds]`` from
            `spol.evaluation.correct_at_thresholds`; empty when boxes are not counted.
        histograms: ``(foreground, background)`` from `spol.evaluation.score_histograms`, or None
            when masks are not counted.
        class_hits: ``(top-1 right, top-5 right)`` (`spol.evaluation.top_k_hits`), or None without classes.
        resized: the map was not on the protocol grid and was resized.
    """

    correct: Mapping[ContourMode, np.ndarray] = field(default_factory=dict)
    histograms: tuple[np.ndarray, np.ndarray] | None = None
    class_hits: tuple[bool, bool] | None = None
    resized: bool = False


@dataclass(frozen=True)
class EvaluationResult:
    """The protocol's numbers for a set of images, in percent.

    Attributes:
        num_images: Images evaluated.
        thresholds: The score thresholds, float64 ``[T]``.
        iou_thresholds: IoU levels in percent.
        multi_contour: The contour mode of `max_box_acc`, `best_threshold` and the Loc numbers: the
            largest contour (False) whenever it was counted, every contour (True) otherwise.
        max_box_acc: ``{iou level: percent}``; empty when no box was counted.
        best_threshold: ``{iou level: first threshold reaching the max}``; empty without boxes.
        max_box_acc_v2: Mean over the IoU levels of every-contour MaxBoxAcc, or None when not counted.
        pxap: PxAP, or None when masks were not counted.
        threshold: The threshold of the Loc numbers (None without boxes or without the Loc IoU level).
        gt_known_loc: Box right at IoU >= 0.5 at `threshold`; None as `threshold`.
        top1_loc: Also the top-1 class right; None without classes.
        top5_loc: Also the true class among the top five; None without classes.
        cls_top1: The top-1 class right; None without classes.
        num_resized: Maps that were not 224 x 224 and were resized (bilinear).
        correct: Per image, bool ``[num_iou, T, num_images]`` in the images' order, for the mode of
            `max_box_acc` (all False without boxes); None when not kept (`spol.evaluation.evaluate_scoremaps` keeps it).
    """

    num_images: int
    thresholds: np.ndarray
    iou_thresholds: tuple[int, ...]
    multi_contour: bool
    max_box_acc: dict[int, float]
    best_threshold: dict[int, float]
    max_box_acc_v2: float | None = None
    pxap: float | None = None
    threshold: float | None = None
    gt_known_loc: float | None = None
    top1_loc: float | None = None
    top5_loc: float | None = None
    cls_top1: float | None = None
    num_resized: int = 0
    correct: np.ndarray | None = None

    @property
    def max_box_acc_mean(self) -> float | None:
        """Mean of `max_box_acc` over the IoU levels (MaxBoxAccV2 when `multi_contour`), or None without boxes."""
        return float(np.mean(list(self.max_box_acc.values()))) if self.max_box_acc else None

    def to_json(self) -> dict[str, Any]:
        """The summary object of ``spol evaluate-maps --json`` (IoU levels as string keys).

        Keys: ``num_images``, ``max_box_acc``, ``max_box_acc_mean``, ``best_cam_threshold`` (the box
        ones null without boxes), ``pxap`` when masks were counted and ``top1_loc``, ``top5_loc``,
        ``gt_known_loc`` when classes were; nothing else, so that the object compares key by key
        with the reference's numbers (``num_resized`` is reported apart).
        """
        out: dict[str, Any] = {
            "num_images": self.num_images,
            "max_box_acc": {str(k): v for k, v in self.max_box_acc.items()} if self.max_box_acc else None,
            "max_box_acc_mean": self.max_box_acc_mean,
            "best_cam_threshold": {str(k): v for k, v in self.best_threshold.items()} if self.best_threshold else None,
        }
        if self.pxap is not None:
            out["pxap"] = self.pxap
        if self.top1_loc is not None:
            out.update(top1_loc=self.top1_loc, top5_loc=self.top5_loc, gt_known_loc=self.gt_known_loc)
        return out

    def to_metrics(self) -> dict[str, Any]:
        """A method's entry of ``metrics.json``.

        Keys: ``top1_loc``, ``top5_loc``, ``gt_known_loc``, ``max_box_acc`` (``{"30": ..}``),
        ``max_box_acc_v2``, ``pxap``, ``cls_top1`` and ``threshold``; null where not counted.
        """
        return {
            "top1_loc": self.top1_loc,
            "top5_loc": self.top5_loc,
            "gt_known_loc": self.gt_known_loc,
            "max_box_acc": {str(k): v for k, v in self.max_box_acc.items()},
            "max_box_acc_v2": self.max_box_acc_v2,
            "pxap": self.pxap,
            "cls_top1": self.cls_top1,
            "threshold": self.threshold,
        }


class ProtocolCounts:
    """Sum-reducible counts of the protocol over a set of images (one method, one split).

    Counters (`counters`, by name): ``images``, ``resized``, ``classified`` and ``top1_hits``
    (0-d); ``box_hits_largest`` / ``box_hits_every``, ``[num_iou, T]``, per counted contour mode;
    ``top1_loc_hits`` / ``top5_loc_hits``, ``[T]``, when Loc is counted; ``foreground_hist`` /
    ``background_hist``, ``[T + 2]``, with masks.

    Args:
        thresholds: The score thresholds (`spol.evaluation.cam_thresholds`).
        iou_thresholds: IoU levels in percent.
        contours: The contour modes whose boxes are counted (none: masks only).
        masks: Also count PxAP histograms.
        loc_iou: IoU level of GT-known / Top-k Loc and of `best_threshold`; it must be one of
            `iou_thresholds`. None: no Loc counters. Loc uses the largest contour's boxes when
            they are counted, else every contour's.
    """

    def __init__(
        self,
        thresholds: Sequence[float] | np.ndarray,
        iou_thresholds: Sequence[int] = DEFAULT_IOU_THRESHOLDS,
        *,
        contours: Sequence[ContourMode] = CONTOUR_MODES,
        masks: bool = False,
        loc_iou: int | None = LOC_IOU,
    ) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.iou_thresholds = tuple(int(v) for v in iou_thresholds)
        if not self.iou_thresholds or any(not 0 < v <= 100 for v in self.iou_thresholds):
            raise ValueError(f"iou_thresholds must be percents in (0, 100], got {iou_thresholds}")
        self.contours = tuple(contours)
        if len(set(self.contours)) != len(self.contours) or not set(self.contours) <= set(CONTOUR_MODES):
            raise ValueError(f"contours must be distinct modes among {CONTOUR_MODES}, got {self.contours}")
        if loc_iou is not None and self.contours and loc_iou not in self.iou_thresholds:
            raise ValueError(
                f"iou_thresholds must include {loc_iou}: GT-known and Top-k Loc use the threshold best at "
                f"IoU {loc_iou / 100} (got {list(self.iou_thresholds)})"
            )
        self.masks = masks
        self.loc_iou = loc_iou if self.contours else None
        self.loc_mode: ContourMode | None = None
        """The contour mode of the Loc numbers and of `best_threshold`; None without boxes."""
        if self.contours:
            self.loc_mode = "largest" if "largest" in self.contours else "every"
        self.counters = self._zero_counters()

    def _zero_counters(self) -> Counters:
        steps, levels = len(self.thresholds), len(self.iou_thresholds)
        counters: Counters = {
            name: np.zeros((), dtype=np.int64) for name in ("images", "resized", "classified", "top1_hits")
        }
        for mode in self.contours:
            counters[f"box_hits_{mode}"] = np.zeros((levels, steps), dtype=np.int64)
        if self.loc_iou is not None:
            counters["top1_loc_hits"] = np.zeros(steps, dtype=np.int64)
            counters["top5_loc_hits"] = np.zeros(steps, dtype=np.int64)
        if self.masks:
            counters["foreground_hist"] = np.zeros(steps + 2, dtype=np.int64)
            counters["background_hist"] = np.zeros(steps + 2, dtype=np.int64)
        return counters

    @property
    def num_images(self) -> int:
        """Images counted."""
        return int(self.counters["images"])

    def add(self, outcome: ImageOutcome) -> None:
        """Add one image.

        Raises:
            ValueError: the outcome lacks what the counts need (a contour mode, histograms) or has
                the wrong shapes.
        """
        counters = self.counters
        if set(outcome.correct) != set(self.contours):
            raise ValueError(
                f"the image has boxes of {sorted(outcome.correct)}; these counts need {list(self.contours)}"
            )
        shape = (len(self.iou_thresholds), len(self.thresholds))
        if any(np.shape(correct) != shape for correct in outcome.correct.values()):
            raise ValueError(f"correct must have shape {shape}, got {[np.shape(c) for c in outcome.correct.values()]}")
        if self.masks and outcome.histograms is None:
            raise ValueError("these counts count PxAP but the image has no mask histograms")
        for mode, correct in outcome.correct.items():
            counters[f"box_hits_{mode}"] += np.asarray(correct, dtype=bool)
        if self.masks and outcome.histograms is not None:
            counters["foreground_hist"] += outcome.histograms[0]
            counters["background_hist"] += outcome.histograms[1]
        if outcome.class_hits is not None:
            top1, top5 = (bool(hit) for hit in outcome.class_hits)
            counters["classified"] += 1
            counters["top1_hits"] += top1
            if self.loc_iou is not None and self.loc_mode is not None:
                right = np.asarray(outcome.correct[self.loc_mode], dtype=bool)[self.iou_thresholds.index(self.loc_iou)]
                counters["top1_loc_hits"] += right & top1
                counters["top5_loc_hits"] += right & top5
        counters["images"] += 1
        counters["resized"] += bool(outcome.resized)

    def summed(self, reduce: Callable[[Counters], Mapping[str, np.ndarray]]) -> ProtocolCounts:
        """New counts holding ``reduce(counters)``, e.g. their sum over processes.

        `reduce` takes and returns the counters by name, the same shapes
        (`spol.runtime.distributed.all_reduce_sum_named`).
        """
        reduced = reduce({name: value.copy() for name, value in self.counters.items()})
        out = ProtocolCounts(
            self.thresholds, self.iou_thresholds, contours=self.contours, masks=self.masks, loc_iou=self.loc_iou
        )
        for name, value in out.counters.items():
            summed = np.asarray(reduced[name], dtype=np.int64)
            if summed.shape != value.shape:
                raise ValueError(f"counter {name}: reduced to shape {summed.shape}, expected {value.shape}")
            out.counters[name] = summed.copy()
        return out

    def box_accuracy(self, mode: ContourMode = "largest") -> np.ndarray:
        """Box accuracy in percent, float64 ``[num_iou, T]``, in contour `mode`.

        Raises:
            ValueError: no image was counted, or `mode` was not.
        """
        if mode not in self.contours:
            raise ValueError(f"boxes of the {mode!r} contour mode were not counted (counted: {list(self.contours)})")
        if self.num_images == 0:
            raise ValueError("no image was evaluated")
        return self.counters[f"box_hits_{mode}"].astype(np.float64) * 100.0 / float(self.num_images)

    def max_box_acc(self, mode: ContourMode = "largest") -> dict[int, float]:
        """``{iou level: max over thresholds of the box accuracy}`` in percent, in contour `mode`."""
        return {iou: float(row.max()) for iou, row in zip(self.iou_thresholds, self.box_accuracy(mode), strict=True)}

    def best_thresholds(self, mode: ContourMode = "largest") -> dict[int, float]:
        """``{iou level: the first threshold reaching the max}``, in contour `mode`."""
        return {
            iou: float(self.thresholds[int(np.argmax(row))])
            for iou, row in zip(self.iou_thresholds, self.box_accuracy(mode), strict=True)
        }

    def max_box_acc_v2(self) -> float:
        """MaxBoxAccV2: the mean over the IoU levels of the every-contour MaxBoxAcc, in percent."""
        return float(np.mean(list(self.max_box_acc("every").values())))

    def best_threshold(self) -> float:
        """The first threshold with the best box accuracy at `loc_iou`, in the Loc contour mode (choose it on val).

        Raises:
            ValueError: no box or no Loc level was counted, or no image.
        """
        if self.loc_iou is None or self.loc_mode is None:
            raise ValueError(f"no Loc threshold: boxes at IoU {LOC_IOU} were not counted")
        return self.best_thresholds(self.loc_mode)[self.loc_iou]

    def result(self, threshold: float | None = None) -> EvaluationResult:
        """The numbers, with GT-known / Top-k Loc at the counted threshold nearest `threshold`.

        Args:
            threshold: The Loc threshold, chosen on another split; None takes this split's own
                `best_threshold` (an oracle choice, as MaxBoxAcc makes; say so when reporting).

        Raises:
            ValueError: no image was counted, or `threshold` is outside [0, 1].
        """
        n = self.num_images
        if n == 0:
            raise ValueError("no image was evaluated")
        mode = self.loc_mode
        loc = self._loc_numbers(threshold)
        classified = int(self.counters["classified"]) == n
        v2 = self.max_box_acc_v2() if "every" in self.contours else None
        pxap = compute_pxap(self.counters["foreground_hist"], self.counters["background_hist"]) if self.masks else None
        return EvaluationResult(
            num_images=n,
            thresholds=self.thresholds,
            iou_thresholds=self.iou_thresholds,
            multi_contour=mode == "every",
            max_box_acc=self.max_box_acc(mode) if mode is not None else {},
            best_threshold=self.best_thresholds(mode) if mode is not None else {},
            max_box_acc_v2=v2,
            pxap=pxap,
            threshold=loc["threshold"],
            gt_known_loc=loc["gt_known_loc"],
            top1_loc=loc["top1_loc"] if classified else None,
            top5_loc=loc["top5_loc"] if classified else None,
            # 100 * (hits / n), the order of the classification accuracy's float arithmetic.
            cls_top1=100.0 * (int(self.counters["top1_hits"]) / n) if classified else None,
            num_resized=int(self.counters["resized"]),
        )

    def _loc_numbers(self, threshold: float | None) -> dict[str, float | None]:
        """``threshold``, ``gt_known_loc``, ``top1_loc``, ``top5_loc`` (all None without Loc counters)."""
        if self.loc_iou is None or self.loc_mode is None:
            return dict.fromkeys(("threshold", "gt_known_loc", "top1_loc", "top5_loc"))
        if threshold is None:
            threshold = self.best_threshold()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        t_index = int(np.argmin(np.abs(self.thresholds - threshold)))
        n = self.num_images
        right = int(self.counters[f"box_hits_{self.loc_mode}"][self.iou_thresholds.index(self.loc_iou), t_index])
        return {
            "threshold": float(threshold),
            "gt_known_loc": 100.0 * float(right) / n,
            "top1_loc": 100.0 * float(self.counters["top1_loc_hits"][t_index]) / n,
            "top5_loc": 100.0 * float(self.counters["top5_loc_hits"][t_index]) / n,
        }


__all__ = ["Counters", "EvaluationResult", "ImageOutcome", "ProtocolCounts"]
