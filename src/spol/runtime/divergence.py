"""Stopping a training stage whose loss is no longer finite, naming the stage's setting to change.

A diverged stage (``--set cam.lr=1e6``) would otherwise train on to the end, export NaN weights, and
leave the next stage to fail on them with a message that sends the user back round the loop.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from spol.config import StageOptimConfig


class TrainingDivergedError(ValueError):
    """A stage's loss or weights became NaN or infinite; the message names the setting to change."""


EPOCH_LOSS = "train/loss"
"""The epoch's mean loss `spol.runtime.system.TrainingSystem` logs, reduced over the DDP ranks."""


class DivergenceGuard(Callback):
    """Raises `TrainingDivergedError` once the loss is NaN or infinite, and when training ends with such weights.

    At each epoch's end the epoch's mean loss (reduced over the ranks by Lightning's logging, so
    every rank decides alike and no collective is added) is checked before the epoch's checkpoint
    is written: Lightning runs checkpoint callbacks last, so a diverged epoch never replaces the last
    good ``last.ckpt``. A single process also checks each step's loss, on its device (no host sync
    per step), reading the flag every `every` batches.

    Args:
        section: the stage's recipe section (``"cam"``, ``"baseline"``, ``"seg"``, ``"classifier"``).
        stage: its settings (the learning rate is named in the message).
        every: batches between reads of the flag (the logging interval, where Lightning syncs anyway).
    """

    def __init__(self, section: str, stage: StageOptimConfig, every: int) -> None:
        self.section = section
        self.stage = stage
        self.every = max(int(every), 1)
        self._bad: Tensor | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.world_size > 1:
            return  # a rank alone must not stop: the others would wait for it in the next collective
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, Tensor):
            bad = ~torch.isfinite(loss.detach()).all()
            self._bad = bad if self._bad is None else self._bad | bad
        if (batch_idx + 1) % self.every == 0 and self._bad is not None and bool(self._bad):
            raise self.error(trainer, "the loss")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get(EPOCH_LOSS)
        if (self._bad is not None and bool(self._bad)) or (
            isinstance(loss, Tensor) and not bool(torch.isfinite(loss).all())
        ):
            raise self.error(trainer, "the loss")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The last update can make the weights NaN after a finite loss; they would be exported next.
        # DDP ranks hold the same weights, so they decide alike.
        if not all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            raise self.error(trainer, "the weights")

    def error(self, trainer: L.Trainer, what: str) -> TrainingDivergedError:
        """The one-line error: what went non-finite, when, and the settings that fix it."""
        lr = self.stage.lr
        return TrainingDivergedError(
            f"the {self.section} stage diverged: {what} became NaN or infinite by step {trainer.global_step} "
            f"(epoch {trainer.current_epoch + 1}); lower {self.section}.lr (now {lr:g}, e.g. --set "
            f"{self.section}.lr={lr / 10:g}) or set trainer.gradient_clip_val, then rerun with --force to start "
            "this stage over"
        )


__all__ = ["EPOCH_LOSS", "DivergenceGuard", "TrainingDivergedError"]
