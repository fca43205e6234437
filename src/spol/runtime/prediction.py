"""Networks over many images on the recipe's devices: Lightning's predict loop, the engine of training.

`run_inference` builds the Trainer the way training does (`spol.runtime.trainer.build_trainer`: the
recipe's accelerator, devices, nodes, strategy, precision and memory format), so pseudo masks and
score maps run on the GPUs that trained the networks, under bf16 / fp16 autocast when training used
it. With several devices or nodes the images are sharded over the processes (Lightning's unrepeated
distributed sampler: each image is seen once) and each process hands its own batches to `consume`;
what the consumers add up is then combined with `spol.runtime.distributed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from spol.config import TrainerConfig
from spol.models import resolve_device
from spol.progress import Progress
from spol.runtime.distributed import ensure_process_group
from spol.runtime.interrupt import at_safe_points
from spol.runtime.trainer import build_trainer, quiet_lightning

logger = logging.getLogger(__name__)


class InferenceSystem(L.LightningModule):
    """A predict-only LightningModule: subclasses implement ``predict_step(batch, batch_idx)``.

    Its networks are kept in eval mode by Lightning's predict loop; gradients are off
    (``inference_mode``).
    """


class _Consume(Callback):
    def __init__(self, consume: Callable[[Any, Any], None]) -> None:
        self.consume = consume

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.consume(outputs, batch)


class _Progress(Callback):
    """The predict loop's progress on rank 0, in images (`spol.progress.Progress`: stdout stays clean)."""

    def __init__(self, description: str, images: int, batch_size: int) -> None:
        self.description, self.images, self.batch_size = description, images, batch_size
        self._progress: Progress | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            # Rank 0's share: image i goes to rank i mod world size.
            self._progress = Progress(-(-self.images // trainer.world_size), self.description)

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._progress is not None:
            self._progress.update(min(self.batch_size, (self._progress.total or 0) - self._progress.done))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None


def trainer_for_device(device: str) -> TrainerConfig:
    """The trainer settings of one process on `device`: ``cpu``, ``cuda`` / ``cuda:N`` or ``auto``.

    Raises:
        ValueError: not a device name, or a CUDA device that is not visible.
    """
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return TrainerConfig(accelerator="gpu", devices=[resolved.index or 0])
    if resolved.type != "cpu":
        raise ValueError(f"device {device!r}: only cpu and cuda devices are supported here")
    return TrainerConfig(accelerator="cpu", devices=1)


def run_inference(
    system: InferenceSystem,
    dataset: TorchDataset,
    *,
    trainer: TrainerConfig,
    num_workers: int,
    batch_size: int,
    consume: Callable[[Any, Any], None],
    collate_fn: Callable[[list[Any]], Any] | None = None,
    progress: bool = True,
    description: str = "inference",
) -> None:
    """Run ``system.predict_step`` over `dataset` and call ``consume(outputs, batch)`` after each batch.

    Every process of a multi-device run calls this with the same `dataset`; each gets a disjoint
    share of it (image ``i`` goes to rank ``i mod world size``), and `consume` sees only that
    share's batches, in order. Nothing is returned: `consume` keeps what it needs.

    Args:
        system: the predict-only module holding the network(s).
        dataset: the items (the same, in the same order, on every process).
        trainer: a recipe's ``trainer``: devices, precision, memory format.
        num_workers: DataLoader worker processes (0: load in this process).
        batch_size: images per forward pass on each device.
        consume: called on this process's batches with ``predict_step``'s output and the batch
            (tensors on the device).
        collate_fn: the DataLoader's batch maker.
        progress: show progress on stderr (`spol.progress.Progress`: a bar on a terminal, log lines elsewhere).
        description: what the pass computes, for the progress and the summary line.

    Raises:
        ValueError: fewer items than processes (every process needs at least one).
        spol.runtime.interrupt.Interrupted: SIGTERM or SIGINT, once the current batch is consumed.
    """
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        return
    ensure_process_group(trainer.accelerator)
    # Lightning's device summary was printed when training started; once per inference pass is noise.
    summary_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = summary_log.level
    summary_log.setLevel(logging.WARNING)
    try:
        lightning_trainer = build_trainer(
            trainer,
            callbacks=[_Consume(consume), *([_Progress(description, size, batch_size)] if progress else [])],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            inference_mode=True,
        )
    finally:
        summary_log.setLevel(level)
    if size < lightning_trainer.world_size:
        raise ValueError(
            f"{size} image(s) cannot be shared by {lightning_trainer.world_size} processes; run with fewer devices "
            "(--set trainer.devices=1)"
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available() and trainer.accelerator != "cpu",
    )
    started = time.perf_counter()
    with quiet_lightning(), at_safe_points():
        lightning_trainer.predict(system, dataloaders=loader, return_predictions=False)
    seconds = time.perf_counter() - started
    logger.info("%s: %d images in %.0f s (%.1f img/s)", description, size, seconds, size / max(seconds, 1e-9))


__all__ = ["InferenceSystem", "run_inference", "trainer_for_device"]
