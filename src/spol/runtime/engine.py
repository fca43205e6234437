"""The Lightning training engine shared by the classifier, CAM and segmentation stages.

A stage builds a pure ``nn.Module``, wraps it in a `spol.runtime.system.TrainingSystem` (a
LightningModule with the stage's loss) and hands it to `fit_stage`, which owns the run folder::

    run_dir/
      config.yaml        effective recipe
      train.log          log of the stage (appended on every run)
      metrics.csv        loss / accuracy / lr every ``trainer.log_every_n_steps`` steps and per epoch
                         (`spol.runtime.training_log.MetricsCSV`)
      tb/                TensorBoard logs
      checkpoints/       last.ckpt (resume point) and the newest ``trainer.keep_checkpoints`` epoch-NNN.ckpt,
                         each written at an epoch's end, beside its name and renamed (`spol.runtime.checkpoint_io`)
      model.pt           the trained network (`spol.models.export_model`); its presence marks the stage done
      inputs.json        what the stage trained from beyond the recipe (e.g. the pseudo masks' source)

Rerunning a stage: ``model.pt`` present → skipped; ``checkpoints/last.ckpt`` present → resumed from it
(optimiser, schedule, epoch and step included); ``force`` → the stage's outputs are removed and
training starts over. A stage made from other inputs (``inputs.json``) is refused, not reused
(`spol.runtime.stage_folder`). SIGTERM or SIGINT stops training after the current step
(`spol.runtime.interrupt`); the rerun resumes from the last finished epoch, so that it makes the
steps, and the network, of an uninterrupted run (``max_steps`` included).

The Trainer comes from ``recipe.trainer`` (`spol.runtime.trainer.build_trainer`, shared with
inference): DDP over GPUs and nodes (Lightning's launcher, torchrun, SLURM), mixed precision and
channels_last. A stage's ``batch_size`` is the global batch of one optimiser step, split over the
devices and accumulated batches (`per_device_batch_size`). Under DDP every process runs the stage;
global rank 0 alone writes the run folder, and every rank returns once ``model.pt`` exists.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spol.config import Recipe, StageOptimConfig, recipe_to_yaml
from spol.data.loaders import SeededShuffle
from spol.fileio import write_text_atomic
from spol.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_CSV,
    MODEL_FILE,
    STAGE_LOG,
    TENSORBOARD_DIR,
)
from spol.runtime.checkpoint_io import AtomicCheckpointIO
from spol.runtime.distributed import barrier, ensure_process_group, is_global_zero
from spol.runtime.divergence import DivergenceGuard
from spol.runtime.interrupt import Interrupted, at_safe_points
from spol.runtime.stage_folder import check_resume_checkpoint, clear_stage_outputs
from spol.runtime.system import TrainingSystem
from spol.runtime.trainer import build_trainer, quiet_lightning
from spol.runtime.training_log import EpochProgress, MetricsCSV, log_to_file

logger = logging.getLogger(__name__)


def per_device_batch_size(batch_size: int, *, world_size: int, accumulate: int, key: str = "batch_size") -> int:
    """The batch each device loads so that one optimiser step sees `batch_size` images in all.

    A recipe's batch size is the global batch of the paper, whatever the number of devices:
    ``batch_size = per-device batch x world_size x accumulate_grad_batches``.

    Raises:
        ValueError: `batch_size` does not divide into ``world_size x accumulate`` equal batches
            (names `key` and the nearest sizes that do).
    """
    parts = world_size * accumulate
    if batch_size % parts:
        lower = max(parts, batch_size - batch_size % parts)
        raise ValueError(
            f"{key}={batch_size} is the global batch of one optimiser step and does not divide into "
            f"{world_size} device(s) x {accumulate} accumulated batch(es); set {key} to a multiple of {parts} "
            f"(e.g. {lower} or {lower + parts}), or change trainer.devices / trainer.accumulate_grad_batches"
        )
    return batch_size // parts


def make_train_loader(dataset: Dataset, *, batch_size: int, recipe: Recipe, world_size: int = 1) -> DataLoader:
    """A shuffling DataLoader of per-device batches of `batch_size`.

    The order and every sample's augmentation come from ``recipe.seed`` and the epoch
    (`spol.data.loaders.SeededShuffle`), not from the loader processes, and the loader leaves the
    global random generator alone: any ``data.num_workers`` gives the same batches and the same
    dropout masks.

    The last incomplete batch is dropped (BatchNorm needs > 1 sample) unless each device's share
    of the dataset is smaller than one batch, in which case the batch is that whole share.
    """
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise ValueError("the train split is empty: nothing to train on; check the dataset's split column / --format")
    share = size // world_size
    if share < 2:
        raise ValueError(
            f"the train split has {size} image(s) for {world_size} device(s); "
            "BatchNorm training needs at least 2 per device"
        )
    if share < batch_size:
        logger.warning(
            "only %d training images per device for batches of %d: using batches of %d", share, batch_size, share
        )
        batch_size = share
    workers = recipe.data.num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SeededShuffle(size, recipe.seed),
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available() and recipe.trainer.accelerator != "cpu",
        # Each iterator draws its workers' base seed from this generator, not from the global one that
        # dropout draws from: without workers an iterator starts every epoch, with persistent workers
        # once, so drawing from the global generator made another number of workers give other results.
        generator=torch.Generator().manual_seed(recipe.seed),
    )


def steps_per_epoch(images: int, device_batch: int, world_size: int, accumulate: int) -> int:
    """Optimiser steps in one epoch of `images` under DDP: what each process's loader yields, then accumulated.

    Each of the `world_size` processes takes a ``ceil(images / world_size)`` share (`SeededShuffle.set_shard`
    pads the last one), and `make_train_loader` drops each share's incomplete batch. The loader built
    before `fit` still sees every image, so its length is `world_size` times too long.
    """
    share = math.ceil(images / max(world_size, 1))
    return (share // max(device_batch, 1)) // max(accumulate, 1)


def stage_epochs(stage: StageOptimConfig, steps_per_epoch: int) -> int:
    """``stage.epochs``, raised so that the stage makes at least ``stage.min_steps`` optimiser steps."""
    if stage.min_steps is None or steps_per_epoch < 1:
        return stage.epochs
    return max(stage.epochs, math.ceil(stage.min_steps / steps_per_epoch))


class _StopAtMaxSteps(Callback):
    """Ends training after `max_steps` optimiser steps, at the end of the epoch's current step.

    Lightning's own ``max_steps`` resumes an end-of-epoch checkpoint as an unfinished epoch: it
    trains one more batch of that epoch (one of the next epoch's steps lost, and other metrics) and
    skips ``on_train_epoch_start``. Stopping through ``should_stop`` keeps Lightning counting epochs,
    which it resumes exactly.
    """

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps

    def _stop_when_reached(self, trainer: L.Trainer) -> None:
        if trainer.global_step >= self.max_steps:
            trainer.should_stop = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_when_reached(trainer)  # resumed from the checkpoint written at max_steps: nothing left to do

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._stop_when_reached(trainer)


class _ShardAndEpoch(Callback):
    """Gives the loader's `SeededShuffle` this process's share and the epoch before any batch is drawn.

    The engine shares the images over DDP processes itself (Lightning's ``use_distributed_sampler``
    off): Lightning's wrapper shuffles the sampler's order again by its own epoch, which on resume
    it sets only after the loader's iterator is built, and loader workers draw their first batches
    as soon as it is: a resumed epoch got another order than in an uninterrupted run.
    """

    def __init__(self, sampler: SeededShuffle) -> None:
        self.sampler = sampler

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.sampler.set_shard(trainer.global_rank, trainer.world_size)  # the processes exist from here on

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Before the iterator exists. The engine writes its checkpoints at an epoch's end: the next one follows.
        self.sampler.set_epoch(int(checkpoint["epoch"]) + 1)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sampler.set_epoch(trainer.current_epoch)


def _start_run_folder(run_dir: Path, recipe: Recipe, *, last: Path, force: bool) -> None:
    """Rank 0's first writes: the stage's outputs removed (`force`), then the recipe saved as config.yaml."""
    if force:
        logger.info("force: removing the previous outputs of this stage in %s", run_dir)
        clear_stage_outputs(run_dir)
    config_path = run_dir / CONFIG_FILE
    text = recipe_to_yaml(recipe)
    if config_path.is_file() and config_path.read_text(encoding="utf-8") != text and last.is_file():
        logger.warning("%s differs from the current recipe; resuming with the current recipe", config_path)
    write_text_atomic(config_path, text)


def _epoch_checkpoints(checkpoint_dir: Path, keep: int | None) -> ModelCheckpoint:
    """Writes last.ckpt and epoch-NNN.ckpt at every epoch's end, keeping the newest `keep` (None: all)."""
    return ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="epoch-{epoch:03d}",
        auto_insert_metric_name=False,
        # The newest epochs are the "best" ones (Lightning's idiom for keeping the last k).
        monitor="epoch" if keep is not None else None,
        mode="max",
        save_top_k=keep if keep is not None else -1,
        every_n_epochs=1,
        save_last=True,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )


def _build_stage_trainer(
    system: TrainingSystem,
    dataset: Dataset,
    *,
    recipe: Recipe,
    stage: StageOptimConfig,
    section_name: str,
    run_dir: Path,
) -> L.Trainer:
    """The stage's Trainer: ``recipe.trainer``, its logs and checkpoints in `run_dir`, ``stage.epochs`` epochs."""
    t = recipe.trainer
    return build_trainer(
        t,
        default_root_dir=run_dir,
        max_epochs=stage.epochs,
        accumulate_grad_batches=t.accumulate_grad_batches,
        sync_batchnorm=t.sync_batchnorm,
        deterministic=t.deterministic,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        gradient_clip_val=t.gradient_clip_val,
        logger=TensorBoardLogger(save_dir=run_dir, name=TENSORBOARD_DIR, version=""),
        callbacks=[
            _epoch_checkpoints(run_dir / CHECKPOINT_DIR, t.keep_checkpoints),
            MetricsCSV(run_dir / METRICS_CSV, t.log_every_n_steps),
            DivergenceGuard(section_name, stage, t.log_every_n_steps),
            EpochProgress(type(system).__name__, len(dataset), max_steps=stage.max_steps),  # type: ignore[arg-type]
            *([_StopAtMaxSteps(stage.max_steps)] if stage.max_steps is not None else []),
        ],
        num_sanity_val_steps=0,
        enable_progress_bar=sys.stderr.isatty(),  # off a terminal the epoch lines report progress
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # _ShardAndEpoch shares the images
    )


def _attach_train_loader(
    trainer: L.Trainer, system: TrainingSystem, dataset: Dataset, *, recipe: Recipe, stage: StageOptimConfig
) -> DataLoader:
    """The train loader for `trainer`'s devices; sets the trainer's epochs (`stage_epochs`) and logs the plan."""
    accumulate = recipe.trainer.accumulate_grad_batches
    device_batch = per_device_batch_size(stage.batch_size, world_size=trainer.world_size, accumulate=accumulate)
    loader = make_train_loader(dataset, batch_size=device_batch, recipe=recipe, world_size=trainer.world_size)
    # Known only now that the loader is: a small train split trains more epochs to reach `min_steps`.
    images: int = len(dataset)  # type: ignore[arg-type]
    steps = steps_per_epoch(images, loader.batch_size or 1, trainer.world_size, accumulate)
    trainer.fit_loop.max_epochs = epochs = stage_epochs(stage, steps)
    # Trainer.callbacks is set at run time, unknown to type checkers.
    trainer.callbacks.append(_ShardAndEpoch(cast(SeededShuffle, loader.sampler)))  # type: ignore[attr-defined]
    logger.info(
        "%s: %d training images, global batch %d (%d per device on %d device(s)%s), %d epochs%s%s",
        type(system).__name__,
        images,
        stage.batch_size,
        loader.batch_size,
        trainer.world_size,
        f", {accumulate} accumulated" if accumulate > 1 else "",
        epochs,
        f" (raised from {stage.epochs} to reach min_steps {stage.min_steps})" if epochs > stage.epochs else "",
        f" (at most {stage.max_steps} steps)" if stage.max_steps is not None else "",
    )
    return loader


def _resume_checkpoint(last: Path, run_dir: Path) -> Path | None:
    """`last` (checked) when it exists, else None: training starts from scratch."""
    if not last.is_file():
        logger.info("training from scratch in %s", run_dir)
        return None
    check_resume_checkpoint(last)
    logger.info("resuming from %s", last)
    return last


def _fit_or_stop(
    trainer: L.Trainer, system: TrainingSystem, loader: DataLoader, *, ckpt_path: Path | None, last: Path
) -> None:
    """``trainer.fit``; a stop signal ends it at a safe point with `Interrupted`, logged with where a rerun resumes."""
    try:
        with quiet_lightning(), at_safe_points():
            try:
                trainer.fit(system, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
            except SIGTERMException as error:  # Lightning's own stop, e.g. on SIGTERM at an epoch's end
                raise Interrupted(signal.SIGTERM) from error
    except Interrupted as stop:
        logger.warning(
            "%s: stopped by %s at epoch %d, step %d; %s",
            type(system).__name__,
            stop.signal_name,
            trainer.current_epoch,
            trainer.global_step,
            f"rerunning resumes from {last} (the last finished epoch)"
            if last.is_file()
            else "no epoch finished: rerunning starts this stage over",
        )
        raise


def fit_stage(
    system: TrainingSystem,
    dataset: Dataset,
    *,
    recipe: Recipe,
    stage: StageOptimConfig,
    section_name: str,
    run_dir: Path,
    export: Callable[[nn.Module, Path], None],
    force: bool = False,
) -> Path:
    """Train `system` on `dataset` in `run_dir` (resuming from its last checkpoint) and export the network.

    Every process of a multi-device run calls this; rank 0 alone writes the run folder's files and
    the model, and every rank returns only once the model file exists.

    Args:
        system: the LightningModule; ``system.net`` is exported.
        dataset: the training samples; ``stage.batch_size`` of them make one optimiser step over
            all devices (`per_device_batch_size`).
        recipe: the effective recipe (saved as config.yaml; ``recipe.trainer`` builds the Trainer).
        stage: the stage's recipe section (epochs, max_steps, batch_size).
        section_name: its name in the recipe (``"cam"``, ``"seg"``, ...), named by the error of a diverged loss.
        run_dir: the stage's run folder.
        export: ``export(net, path)`` writes the model file (e.g. `spol.models.export_model`).
        force: remove the stage's model, checkpoints, metrics.csv and TensorBoard files first and start over.

    Returns:
        ``run_dir/model.pt``.

    Raises:
        ValueError: the batch size does not divide over the devices.
        TrainingDivergedError: the loss became NaN, infinite or huge, or the weights NaN or infinite (a
            ValueError naming ``<section_name>.lr``); no checkpoint of the diverged weights is written.
        spol.runtime.interrupt.Interrupted: SIGTERM or SIGINT stopped training after a step; rerun to
            resume from the last finished epoch's checkpoint.
    """
    run_dir = Path(run_dir)
    model_path = run_dir / MODEL_FILE
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    ensure_process_group(recipe.trainer.accelerator)
    with log_to_file(run_dir / STAGE_LOG):
        if is_global_zero():
            _start_run_folder(run_dir, recipe, last=last, force=force)
        barrier()  # no rank decides to resume from a checkpoint that rank 0 is removing (--force)
        trainer = _build_stage_trainer(
            system, dataset, recipe=recipe, stage=stage, section_name=section_name, run_dir=run_dir
        )
        loader = _attach_train_loader(trainer, system, dataset, recipe=recipe, stage=stage)
        ckpt_path = _resume_checkpoint(last, run_dir)
        _fit_or_stop(trainer, system, loader, ckpt_path=ckpt_path, last=last)
        if trainer.interrupted:
            raise RuntimeError(f"training in {run_dir} was interrupted; rerun the same command to resume from {last}")
        logger.info("finished at epoch %d, step %d", trainer.current_epoch, trainer.global_step)
        if trainer.is_global_zero:
            export(system.net, model_path)
            logger.info("wrote %s", model_path)
        barrier()  # the other ranks read the model next
    return model_path


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, torch and the DataLoader workers (Lightning's `seed_everything`, workers=True)."""
    L.seed_everything(seed, workers=True, verbose=False)


__all__ = ["fit_stage", "make_train_loader", "per_device_batch_size", "seed_everything", "steps_per_epoch"]
