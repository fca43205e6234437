"""The LightningModule every training stage subclasses: loss logging, optimiser, schedule, resumable RNG.

Optimiser: SGD with momentum, Nesterov and weight decay (the release's) or AdamW, in two parameter
groups, new layers at ``lr`` and the pretrained backbone at ``lr * backbone_lr_mult``. Schedule
(`build_scheduler`, torch's schedulers), stepped per optimiser step over the whole run (T =
Lightning's estimated stepping batches, at most ``max_steps``): ``constant``, ``linear`` ``(1 - t/T)``, ``poly``
``(1 - t/T) ** 0.9`` or ``onecycle``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from spol.config import StageOptimConfig
from spol.models.layers import deterministic_cuda, use_deterministic_pooling
from spol.runtime.distributed import gather_objects, rank_and_world_size

logger = logging.getLogger(__name__)


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


def _map_tensors(value: Any, convert: Callable[[Any], Any]) -> Any:
    """`value` with every tensor (or, back, every array) converted: ranks exchange generator states as arrays."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return convert(value)
    if isinstance(value, dict):
        return {key: _map_tensors(item, convert) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_map_tensors(item, convert) for item in value)
    return value


def rank_rng_states(saved: Any, rank: int, world_size: int) -> dict[str, Any] | None:
    """This rank's generator states in a checkpoint's ``spol_rng_states``, or None to keep its own.

    A checkpoint holds one entry per rank that saved it (a single dict before spol 0.3). A rank
    restores its own entry when the checkpoint was saved by as many ranks as run now; with another
    number of processes only rank 0 restores rank 0's, and the other ranks keep their seeded generators
    (restoring rank 0's on every rank would give every GPU rank 0's CUDA generator).
    """
    if saved is None:
        return None
    entries = saved if isinstance(saved, list) else [saved]
    if len(entries) == world_size or rank == 0:
        return entries[rank] if len(entries) == world_size else entries[0]
    logger.warning(
        "the checkpoint holds the random generators of %d process(es), this run has %d: rank %d keeps its own",
        len(entries),
        world_size,
        rank,
    )
    return None


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
        out = {"loss": loss}
        values = {"loss": loss.detach()}
        if accuracy is not None:
            values["acc"] = out["accuracy"] = accuracy.detach()
        for name, value in values.items():
            # Per step: this process's value, no collective. Per epoch: accumulated on the device and
            # reduced over the processes once, at the epoch's end (Lightning syncs on_step values every step).
            self.log(f"train/{name}_step", value, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return out

    def on_fit_start(self) -> None:
        # Deterministic training on a GPU: the classifiers' adaptive average pools have no deterministic backward.
        if deterministic_cuda(next(self.net.parameters())):
            replaced = use_deterministic_pooling(self.net)
            if replaced:
                logger.info("deterministic CUDA training: %d adaptive average pool(s) computed as a mean", replaced)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Every rank runs this hook and rank 0 writes the file: it holds each rank's generators, in rank order.
        gathered = gather_objects(_map_tensors(_collect_rng_states(), lambda t: t.cpu().numpy()))
        checkpoint["spol_rng_states"] = [_map_tensors(states, torch.from_numpy) for states in gathered]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Restoring the random generators makes a resumed run draw the same shuffles, crops and
        # dropout masks as an uninterrupted one (Lightning does not restore them by itself).
        states = rank_rng_states(checkpoint.get("spol_rng_states"), *rank_and_world_size())
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
        total = self.trainer.estimated_stepping_batches
        if self.optim.max_steps is not None:  # enforced by the engine, not by Lightning's max_steps
            total = min(total, self.optim.max_steps)
        scheduler = build_scheduler(optimizer, self.optim.schedule, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


__all__ = ["TrainingSystem", "build_scheduler", "rank_rng_states"]
