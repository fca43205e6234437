"""Per-image protocol work (boxes at every threshold, PxAP histograms) and the threads that run it.

`spol.evaluation.StreamingEvaluator` feeds it maps, whether read from disk (`evaluate_scoremaps`) or
made by a network. At most two chunks of maps per worker are in flight, so the memory held by maps
does not grow with the number of images. Threads suffice: the compiled level sweep that dominates
releases the GIL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spol.evaluation.box_accuracy import ContourMode, compile_kernels, correct_at_thresholds
from spol.evaluation.counts import ImageOutcome
from spol.evaluation.pixel_accuracy import load_protocol_mask, score_histograms

CHUNK = 16
"""Images per task handed to a worker."""


@dataclass(frozen=True)
class MapTask:
    """One image's map on the protocol grid, its ground truth (boxes on the same grid) and what passes through.

    Attributes:
        class_hits: ``(top-1 right, top-5 right)``, or None without classes (copied to the outcome).
        resized: the map was resized to the protocol grid (copied to the outcome).
    """

    image_id: str
    scoremap: np.ndarray
    gt_boxes: np.ndarray | None
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None
    class_hits: tuple[bool, bool] | None = None
    resized: bool = False


@dataclass(frozen=True)
class MapSettings:
    """What to compute per image: box correctness per contour mode, and/or PxAP histograms."""

    thresholds: np.ndarray
    iou_thresholds: tuple[int, ...]
    contour_modes: tuple[ContourMode, ...]
    masks: bool


def evaluate_map(task: MapTask, settings: MapSettings) -> ImageOutcome:
    """The protocol's per-image work for `task`."""
    correct = {}
    if task.gt_boxes is not None:
        correct = {
            mode: correct_at_thresholds(
                task.scoremap,
                task.gt_boxes,
                settings.thresholds,
                settings.iou_thresholds,
                multi_contour=mode == "every",
            )
            for mode in settings.contour_modes
        }
    histograms = None
    if settings.masks:
        try:
            gt_mask = load_protocol_mask(task.mask_paths, task.ignore_path)
        except (ValueError, FileNotFoundError) as error:
            raise type(error)(f"image {task.image_id}: {error}") from error
        histograms = score_histograms(task.scoremap, gt_mask, settings.thresholds)
    return ImageOutcome(correct, histograms, task.class_hits, task.resized)


def _evaluate_chunk(tasks: list[MapTask], settings: MapSettings) -> list[ImageOutcome]:
    return [evaluate_map(task, settings) for task in tasks]


class MapPool:
    """Evaluates tasks on worker threads and returns outcomes in submission order.

    ``workers <= 1`` evaluates in the calling thread. Otherwise chunks go to a thread pool with at
    most two chunks per worker in flight: `submit` blocks on the oldest chunk beyond that.

    Args:
        settings: what to compute per image.
        workers: pool size.
    """

    def __init__(self, settings: MapSettings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self._pending: deque[Future] = deque()
        self._chunk: list[MapTask] = []
        self._pool: ThreadPoolExecutor | None = None
        if workers > 1:
            compile_kernels()
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spol-eval")

    def submit(self, tasks: Iterable[MapTask]) -> Iterator[ImageOutcome]:
        """Queue `tasks`; yields the outcomes that are due (consume them before the next call)."""
        for task in tasks:
            if self._pool is None:
                yield evaluate_map(task, self.settings)
                continue
            self._chunk.append(task)
            if len(self._chunk) == CHUNK:
                self._pending.append(self._pool.submit(_evaluate_chunk, self._chunk, self.settings))
                self._chunk = []
                while len(self._pending) >= 2 * self.workers:
                    yield from self._pending.popleft().result()

    def finish(self) -> Iterator[ImageOutcome]:
        """Yields every outstanding outcome, then shuts the pool down."""
        try:
            if self._pool is not None and self._chunk:
                self._pending.append(self._pool.submit(_evaluate_chunk, self._chunk, self.settings))
                self._chunk = []
            while self._pending:
                yield from self._pending.popleft().result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the pool (outstanding work is dropped)."""
        if self._pool is not None:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)
            self._pool = None


__all__ = ["CHUNK", "MapPool", "MapSettings", "MapTask", "evaluate_map"]
