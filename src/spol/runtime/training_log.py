"""What a training stage reports: one log line per epoch, ``metrics.csv`` and its ``train.log``."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from spol.fileio import LOG_FORMAT
from spol.progress import Progress, format_duration
from spol.runtime.distributed import is_global_zero

logger = logging.getLogger(__name__)


class EpochProgress(Callback):
    """One log line per epoch (rank 0): its mean loss and accuracy, images/s and the time left.

    Progress bars only show on a terminal; these lines reach a pipe, a CI log and ``train.log`` too.
    Off a terminal a long epoch also logs where it stands every `spol.progress.LOG_EVERY_S` seconds.
    The time left is this epoch's time per optimiser step times the steps left (up to `max_steps`).

    Args:
        name: what trains (the system's name).
        images_per_epoch: the images one epoch sees (over every process), for the progress lines.
        max_steps: the stage's ``max_steps`` (None: every epoch runs in full).
    """

    def __init__(self, name: str, images_per_epoch: int, *, max_steps: int | None = None) -> None:
        self.name = name
        self.images_per_epoch = images_per_epoch
        self.max_steps = max_steps
        self._started = 0.0
        self._start_step = 0
        self._sums: dict[str, Tensor] = {}
        self._count = 0
        self._progress: Progress | None = None

    def _start(self, trainer: L.Trainer) -> None:
        self._started, self._start_step, self._sums, self._count = time.perf_counter(), trainer.global_step, {}, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer)  # the clock starts with this process's training, whatever hook a resume calls

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer)
        if trainer.is_global_zero:
            epoch = f"{self.name} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
            self._progress = Progress(self.images_per_epoch, epoch, bar=False)  # Lightning draws the bar

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if _accumulate(self._sums, outputs):
            self._count += 1
        if self._progress is not None:
            images = trainer.world_size * _batch_size(trainer)
            self._progress.update(min(images, self.images_per_epoch - self._progress.done))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self._count == 0:
            return
        seconds = time.perf_counter() - self._started
        images = self._count * trainer.world_size * _batch_size(trainer)
        total = trainer.estimated_stepping_batches
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        steps = max(trainer.global_step - self._start_step, 1)
        left = max(total - trainer.global_step, 0) * seconds / steps
        means = ", ".join(f"{key} {float(value) / self._count:.3f}" for key, value in self._sums.items())
        logger.info(
            "%s epoch %d/%d: %s; %d images in %.0f s (%.1f img/s), about %s left",
            self.name,
            trainer.current_epoch + 1,
            trainer.max_epochs,
            means,
            images,
            seconds,
            images / max(seconds, 1e-9),
            format_duration(left),
        )


def _accumulate(sums: dict[str, Tensor], outputs: Any) -> bool:
    """Add a step's loss and accuracy to `sums`, on their device (no host sync); False when it has none."""
    if not isinstance(outputs, dict):
        return False
    for key in ("loss", "accuracy"):
        value = outputs.get(key)
        if isinstance(value, Tensor):
            value = value.detach()
            sums[key] = sums[key] + value if key in sums else value.clone()
    return True


def _batch_size(trainer: L.Trainer) -> int:
    loader = trainer.train_dataloader
    return int(getattr(loader, "batch_size", None) or 1)


class MetricsCSV(Callback):
    """Append training metrics to a CSV file (rank 0).

    One ``step`` row every `every_n_steps` optimiser steps and one ``epoch`` row (means over rank 0's
    batches) per epoch.

    Columns: kind, epoch, step, loss, accuracy (empty when the stage has none), lr (new layers).
    The file is appended, so a resumed run continues it.
    """

    COLUMNS = ("kind", "epoch", "step", "loss", "accuracy", "lr")

    def __init__(self, path: Path, every_n_steps: int) -> None:
        self.path = Path(path)
        self.every_n_steps = max(int(every_n_steps), 1)
        self._sums: dict[str, Tensor] = {}
        self._count = 0
        self._last_step = -1

    def _write(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=self.COLUMNS, restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)

    @staticmethod
    def _lr(trainer: L.Trainer) -> float | str:
        return trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else ""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sums, self._count = {}, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero or not _accumulate(self._sums, outputs):
            return
        self._count += 1
        step = trainer.global_step
        if step != self._last_step and step % self.every_n_steps == 0:
            # The only host sync of a step, every `every_n_steps` steps.
            self._last_step = step
            values = {k: float(v) for k, v in outputs.items() if k in ("loss", "accuracy") and isinstance(v, Tensor)}
            self._write(
                {"kind": "step", "epoch": trainer.current_epoch, "step": step, **values, "lr": self._lr(trainer)}
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self._count == 0:
            return
        means = {key: float(total) / self._count for key, total in self._sums.items()}
        self._write(
            {
                "kind": "epoch",
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                **means,
                "lr": self._lr(trainer),
            }
        )


@contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Copy spol's and Lightning's INFO log lines to `path` (rank 0 only, so DDP ranks do not interleave)."""
    if not is_global_zero():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger("spol"), logging.getLogger("lightning.pytorch")]
    levels = [log.level for log in loggers]
    for log in loggers:
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
        log.addHandler(handler)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.removeHandler(handler)
            log.setLevel(level)
        handler.close()


__all__ = ["EpochProgress", "MetricsCSV", "log_to_file"]
