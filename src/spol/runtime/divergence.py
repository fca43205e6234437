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
from spol.runtime.distributed import cpu_group, is_distributed


class TrainingDivergedError(ValueError):
    """A stage's loss or weights became NaN or infinite; the message names the setting to change."""


EPOCH_LOSS = "train/loss"
"""The epoch's mean loss `spol.runtime.system.TrainingSystem` logs, reduced over the DDP ranks."""


DIVERGED_LOSS = 1e4
"""A training loss above this has diverged though finite: every loss spol trains with starts near
``ln C`` (cross-entropy over C classes, at most about 7 for 1000 classes) or below 1 (the
segmentation's), and none climbs four orders of magnitude while it learns."""


class DivergenceGuard(Callback):
    """Raises `TrainingDivergedError` once the loss diverges, and when training ends with non-finite weights.

    A loss has diverged when it is NaN, infinite or above `DIVERGED_LOSS`. Each step's loss is
    checked on its device (no host sync per step) and the flag read every `every` batches; under
    DDP the ranks' flags are combined there (one small all-reduce on a CPU group), so every
    rank stops at the same batch and none waits in a collective for a rank that left. At each
    epoch's end the epoch's mean loss (reduced over the ranks by Lightning's logging) is checked
    before the epoch's checkpoint is written: Lightning runs checkpoint callbacks last, so a
    diverged epoch never replaces the last good ``last.ckpt``.

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
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, Tensor):
            bad = _diverged(loss.detach())
            self._bad = bad if self._bad is None else self._bad | bad
        if (batch_idx + 1) % self.every == 0 and self._any_rank_bad(trainer):
            raise self.error(trainer, f"the loss became NaN, infinite or above {DIVERGED_LOSS:g}")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get(EPOCH_LOSS)
        if self._any_rank_bad(trainer) or (isinstance(loss, Tensor) and bool(_diverged(loss))):
            raise self.error(trainer, f"the loss became NaN, infinite or above {DIVERGED_LOSS:g}")

    def _any_rank_bad(self, trainer: L.Trainer) -> bool:
        # Every rank reaches this at the same batch (the shards are of equal length), so the vote
        # is a collective that all ranks enter; a rank alone must never stop.
        bad = self._bad is not None and bool(self._bad)
        if is_distributed():
            # On the CPU group: no collective on the training devices, which logging keeps to one an epoch.
            votes = torch.tensor([bad], dtype=torch.int64)
            torch.distributed.all_reduce(votes, group=cpu_group())
            bad = bool(votes[0])
        return bad

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The last update can make the weights NaN after a finite loss; they would be exported next.
        # DDP ranks hold the same weights, so they decide alike.
        if not all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            raise self.error(trainer, "the weights became NaN or infinite")

    def error(self, trainer: L.Trainer, what: str) -> TrainingDivergedError:
        """The one-line error: what went wrong (`what`), when, and the settings that fix it."""
        lr = self.stage.lr
        return TrainingDivergedError(
            f"the {self.section} stage diverged: {what} by step {trainer.global_step} "
            f"(epoch {trainer.current_epoch + 1}); lower {self.section}.lr (now {lr:g}, e.g. --set "
            f"{self.section}.lr={lr / 10:g}) or set trainer.gradient_clip_val, then rerun with --force to start "
            "this stage over"
        )


def _diverged(loss: Tensor) -> Tensor:
    """A 0-d bool tensor on `loss`'s device: some value is NaN, infinite or above `DIVERGED_LOSS`."""
    return ~(torch.isfinite(loss) & (loss <= DIVERGED_LOSS)).all()


__all__ = ["DIVERGED_LOSS", "EPOCH_LOSS", "DivergenceGuard", "TrainingDivergedError"]
