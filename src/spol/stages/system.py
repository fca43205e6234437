"""The LightningModule every training stage subclasses: loss logging, optimiser, schedule, resumable RNG.

Optimiser: SGD with momentum, Nesterov and weight decay (the release's) or AdamW, in two parameter
groups, new layers at ``lr`` and the pretrained backbone at ``lr * backbone_lr_mult``. Schedule
(`build_scheduler`, torch's schedulers), stepped per optimiser step over the whole run (T =
Lightning's estimated stepping batches): ``constant``, ``linear`` ``(1 - t/T)``, ``poly``
``(1 - t/T) ** 0.9`` or ``onecycle``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from spol.config import StageOptimConfig


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's learning-rate schedule over `total_steps` optimiser steps (torch's schedulers).

    ``constant``: the groups' learning rates throughout; ``linear``: ``lr * (1 - t/T)``; ``poly``:
    ``lr * (1 - t/T) ** 0.9``; ``onecycle``: `OneCycleLR` up to each group's ``lr`` and down.
    """
    total = max(int(total_steps), 1)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if schedule == "constant":
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif schedule == "linear":
        scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=total)
    elif schedule == "poly":
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total, power=0.9)
    elif schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        # One step of slack: OneCycleLR refuses a step beyond its total, and the estimate may be one short.
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total + 1)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose 'constant', 'linear', 'poly' or 'onecycle'")
    return scheduler


def _collect_rng_states() -> dict[str, Any]:
    # Plain containers and tensors only, so the checkpoint loads with torch.load(weights_only=True).
    kind, keys, position, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


class TrainingSystem(L.LightningModule):
    """A LightningModule around a pure network: two-group SGD or AdamW, the schedule, loss and accuracy logging.

    Subclasses implement `compute_loss(batch) -> (loss, accuracy or None)`.

    Args:
        net: the network being trained (exported at the end).
        optim: the stage's recipe section (optimizer, lr, backbone_lr_mult, momentum, nesterov, weight_decay,
            schedule).
        is_backbone: parameter name → True for pretrained parameters (trained at ``lr * backbone_lr_mult``).
    """

    def __init__(self, net: nn.Module, optim: StageOptimConfig, is_backbone: Callable[[str], bool]) -> None:
        super().__init__()
        self.net = net
        self.optim = optim
        self.is_backbone = is_backbone

    def compute_loss(self, batch: Any) -> tuple[Tensor, Tensor | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        loss, accuracy = self.compute_loss(batch)
        size = len(batch[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        out = {"loss": loss}
        if accuracy is not None:
            self.log("train/acc", accuracy, on_step=True, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
            out["accuracy"] = accuracy.detach()
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["spol_rng_states"] = _collect_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restoring the random generators makes a resumed run draw the same shuffles, crops and
        # dropout masks as an uninterrupted one (Lightning does not restore them by itself).
        states = checkpoint.get("spol_rng_states")
        if states is not None:
            _restore_rng_states(states)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """``[{"params": new layers, "lr": lr}, {"params": backbone, "lr": lr * mult}]`` (trainable parameters only)."""
        new: list[nn.Parameter] = []
        backbone: list[nn.Parameter] = []
        for name, parameter in self.net.named_parameters():
            if parameter.requires_grad:
                (backbone if self.is_backbone(name) else new).append(parameter)
        groups = [
            {"params": new, "lr": self.optim.lr, "name": "new"},
            {"params": backbone, "lr": self.optim.lr * self.optim.backbone_lr_mult, "name": "backbone"},
        ]
        return [group for group in groups if group["params"]]

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optimizer: torch.optim.Optimizer
        if self.optim.optimizer == "adamw":
            optimizer = torch.optim.AdamW(
                self.parameter_groups(), lr=self.optim.lr, weight_decay=self.optim.weight_decay
            )
        else:
            optimizer = torch.optim.SGD(
                self.parameter_groups(),
                lr=self.optim.lr,
                momentum=self.optim.momentum,
                nesterov=self.optim.nesterov and self.optim.momentum > 0,
                weight_decay=self.optim.weight_decay,
            )
        scheduler = build_scheduler(optimizer, self.optim.schedule, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["TrainingSystem", "build_scheduler"]
