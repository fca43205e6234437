"""The Lightning training engine shared by the classifier, CAM and segmentation stages.

A stage builds a pure ``nn.Module``, wraps it in a `TrainingSystem` (a LightningModule with the
stage's loss) and hands it to `fit_stage`, which owns the run folder::

    run_dir/
      config.yaml        effective recipe
      train.log          log of the stage (appended on every run)
      metrics.csv        loss / accuracy / lr every ``trainer.log_every_n_steps`` steps and per epoch
      tb/                TensorBoard logs
      checkpoints/       epoch-NNN.ckpt per epoch and last.ckpt (resume point)
      model.pt           the trained network (`spol.models.export_model`); its presence marks the stage done
      inputs.json        what the stage trained from beyond the recipe (e.g. the pseudo masks' source)

Rerunning a stage: ``model.pt`` present → skipped; ``checkpoints/last.ckpt`` present → resumed from it
(optimiser, schedule, epoch and step included); ``force`` → the stage's outputs are removed and
training starts over. A stage made from other inputs (``inputs.json``) is refused, not reused.

The Trainer comes from ``recipe.trainer`` (`build_trainer`, shared with inference): DDP over GPUs and
nodes (Lightning's launcher, torchrun, SLURM), mixed precision and channels_last. A stage's
``batch_size`` is the global batch of one optimiser step, split over the devices and accumulated
batches (`per_device_batch_size`). Under DDP every process runs the stage; global rank 0 alone writes
the run folder, and every rank returns once ``model.pt`` exists.

Optimiser: SGD with momentum, Nesterov and weight decay (the release's) or AdamW, in two parameter
groups, new layers at ``lr`` and the pretrained backbone at ``lr * backbone_lr_mult``. Schedule
(`build_scheduler`, torch's schedulers), stepped per optimiser step over the whole run (T =
Lightning's estimated stepping batches): ``constant``, ``linear`` ``(1 - t/T)``, ``poly``
``(1 - t/T) ** 0.9`` or ``onecycle``.
"""

from __future__ import annotations

import csv
import logging
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from spol.config import Recipe, StageOptimConfig, TrainerConfig, recipe_to_yaml
from spol.data.loaders import SeededShuffle
from spol.data.records import ImageRecord, records_digest
from spol.fileio import LOG_FORMAT, write_json_atomic, write_text_atomic
from spol.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    INPUTS_FILE,
    LAST_CHECKPOINT,
    METRICS_CSV,
    MODEL_FILE,
    STAGE_LOG,
    TENSORBOARD_DIR,
    differences,
    read_record,
    remove_owned,
)
from spol.stages.distributed import barrier, is_global_zero

logger = logging.getLogger(__name__)



class _DropAdvertising(logging.Filter):
    # Lightning logs a product tip on every Trainer; it is noise in a run's log.
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_DROP_ADVERTISING = _DropAdvertising()


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


class EpochProgress(Callback):
    """One log line per epoch (rank 0): its mean loss and accuracy, images/s and the time left.

    Progress bars only show on a terminal; these lines reach a pipe, a CI log and ``train.log`` too.
    """

    def __init__(self, name: str, images_per_epoch: int) -> None:
        self.name = name
        self.images_per_epoch = images_per_epoch
        self._started = 0.0
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started, self._sums, self._count = time.perf_counter(), {}, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, dict):
            for key in ("loss", "accuracy"):
                if isinstance(outputs.get(key), Tensor):
                    self._sums[key] = self._sums.get(key, 0.0) + float(outputs[key])
            self._count += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self._count == 0:
            return
        seconds = time.perf_counter() - self._started
        images = self._count * trainer.world_size * _batch_size(trainer)
        left = max(int(trainer.max_epochs or 0) - trainer.current_epoch - 1, 0) * seconds
        means = ", ".join(f"{key} {value / self._count:.3f}" for key, value in self._sums.items())
        logger.info(
            "%s epoch %d/%d: %s; %d images in %.0f s (%.1f img/s), about %s left",
            self.name,
            trainer.current_epoch + 1,
            trainer.max_epochs,
            means,
            images,
            seconds,
            images / max(seconds, 1e-9),
            _duration(left),
        )


def _batch_size(trainer: L.Trainer) -> int:
    loader = trainer.train_dataloader
    return int(getattr(loader, "batch_size", None) or 1)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


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
        self._sums: dict[str, float] = {}
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
        if not trainer.is_global_zero or not isinstance(outputs, dict):
            return
        values = {k: float(v) for k, v in outputs.items() if k in ("loss", "accuracy") and isinstance(v, Tensor)}
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        step = trainer.global_step
        if step != self._last_step and step % self.every_n_steps == 0:
            self._last_step = step
            self._write(
                {"kind": "step", "epoch": trainer.current_epoch, "step": step, **values, "lr": self._lr(trainer)}
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self._count == 0:
            return
        means = {key: total / self._count for key, total in self._sums.items()}
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
def _log_to_file(path: Path) -> Iterator[None]:
    # The stage's own log file next to its outputs; rank 0 only, so DDP ranks do not interleave.
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


def stage_inputs(
    recipe: Recipe, sections: tuple[str, ...], records: Sequence[ImageRecord], **upstream: Any
) -> dict[str, Any]:
    """What a training stage's outputs depend on, as recorded in its ``inputs.json``.

    The recipe's shared model and training settings, the stage's own `sections`, a digest of its
    training images (`spol.data.records_digest`) and what it consumes from other stages (`upstream`,
    e.g. the pseudo masks' source). Loader processes, logging and the evaluation are left out: they
    change no weight.
    """
    trainer = recipe.trainer.model_dump(mode="json")
    trainer.pop("log_every_n_steps")
    return {
        "backbone": recipe.backbone,
        "weights": recipe.weights,
        "seed": recipe.seed,
        "data": {"resize": recipe.data.resize, "crop": recipe.data.crop},
        "trainer": trainer,
        **{name: getattr(recipe, name).model_dump(mode="json") for name in sections},
        "train_images": records_digest(records),
        **upstream,
    }


def finished_model(run_dir: Path, *, force: bool, inputs: dict[str, Any] | None = None) -> Path | None:
    """``run_dir/model.pt`` when the stage already finished and `force` is off, else None.

    Args:
        run_dir: the stage's run folder.
        force: the stage will start over: never reuse its model.
        inputs: what the stage trains from (`stage_inputs`), recorded in ``run_dir/inputs.json``. A
            finished or started stage recorded with other inputs is refused rather than reused or
            resumed, naming what changed.

    Raises:
        ValueError: `inputs` differ from those the stage's outputs were made from (and not `force`).
    """
    run_dir = Path(run_dir)
    model_path = run_dir / MODEL_FILE
    if inputs is not None:
        inputs_path = run_dir / INPUTS_FILE
        started = model_path.is_file() or (run_dir / CHECKPOINT_DIR).is_dir()
        recorded, compared = read_record(inputs_path), inputs
        if started and not model_path.is_file() and recorded is not None:
            # An interrupted stage may resume with another length (train longer): compare the rest.
            recorded, compared = _without_length(recorded), _without_length(inputs)
        if started and not force and recorded is not None and recorded != compared:
            raise ValueError(
                f"{run_dir} was trained from other inputs than now "
                f"(changed: {'; '.join(differences(recorded, compared))}; "
                f"see {inputs_path}); pass --force to train it again, or choose another output folder"
            )
        if (force or not model_path.is_file()) and is_global_zero():
            write_json_atomic(inputs_path, inputs)
    if model_path.is_file() and not force:
        logger.info("%s exists: stage already done, skipping (pass force=True / --force to train again)", model_path)
        return model_path
    return None


_LENGTH_KEYS = ("epochs", "max_steps")


def _without_length(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {k: v for k, v in value.items() if k not in _LENGTH_KEYS} if isinstance(value, dict) else value
        for key, value in inputs.items()
    }


def _clear_stage_outputs(run_dir: Path) -> None:
    """Delete what a stage wrote (model, metrics, Lightning's checkpoints and TensorBoard files), nothing else."""
    remove_owned(
        run_dir,
        [MODEL_FILE, METRICS_CSV],
        [
            (CHECKPOINT_DIR, "epoch-*.ckpt"),
            (CHECKPOINT_DIR, LAST_CHECKPOINT),
            (TENSORBOARD_DIR, "events.out.tfevents.*"),
            (TENSORBOARD_DIR, "hparams.yaml"),
        ],
    )


def _check_checkpoint(path: Path) -> None:
    """Refuse a resume point that does not load (a truncated or foreign ``last.ckpt``), naming the fix."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated file
        raise ValueError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}); delete it to resume from an "
            f"earlier checkpoint renamed to {LAST_CHECKPOINT} (epoch-NNN.ckpt beside it), or pass --force to train "
            "this stage again"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint of this stage; delete it or pass --force")


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
    (`spol.data.loaders.SeededShuffle`), not from the loader processes: any ``data.num_workers``
    gives the same batches.

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
    )


class _ShuffleEpoch(Callback):
    # Under DDP Lightning wraps the loader's sampler and sets the epoch on its wrapper only.
    def __init__(self, sampler: SeededShuffle) -> None:
        self.sampler = sampler

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sampler.set_epoch(trainer.current_epoch)


class ChannelsLast(Callback):
    """Keeps the network in the NHWC memory format while the Trainer runs it.

    Convolutions then run in NHWC (faster on GPU tensor cores, especially with bf16): with
    NHWC weights, PyTorch picks NHWC for the convolution of an NCHW input too, so batches need
    no conversion. The network is put back in the default format at the end, so exported and
    reused models are the usual ones.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.contiguous_format)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning warnings a user cannot act on while a Trainer runs."""
    with warnings.catch_warnings():
        # Lightning's own use of a torch API deprecated in newer torch.
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
        # A predict step returns None on purpose when its batch holds no image left to do.
        warnings.filterwarnings("ignore", message=r"predict returned None")
        yield


def build_trainer(config: TrainerConfig, *, callbacks: list[Callback] | None = None, **kwargs: Any) -> L.Trainer:
    """A Lightning Trainer on the recipe's accelerator, devices, nodes, strategy, precision and memory format.

    `kwargs` add the job's own arguments (epochs, logger, ...). Training and inference both build
    their Trainer here, so they run on the same devices with the same precision.
    """
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DROP_ADVERTISING)
    callbacks = list(callbacks or [])
    if config.channels_last:
        callbacks.append(ChannelsLast())
    return L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,  # type: ignore[arg-type]
        enable_model_summary=False,
        callbacks=callbacks,
        **kwargs,
    )


def fit_stage(
    system: TrainingSystem,
    dataset: Dataset,
    *,
    recipe: Recipe,
    stage: StageOptimConfig,
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
        run_dir: the stage's run folder.
        export: ``export(net, path)`` writes the model file (e.g. `spol.models.export_model`).
        force: remove the stage's checkpoints, logs and model first and start over.

    Returns:
        ``run_dir/model.pt``.

    Raises:
        ValueError: the batch size does not divide over the devices.
        RuntimeError: training was interrupted (e.g. Ctrl-C); rerun to resume from the last checkpoint.
    """
    run_dir = Path(run_dir)
    model_path = run_dir / MODEL_FILE
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    last = checkpoint_dir / LAST_CHECKPOINT
    with _log_to_file(run_dir / STAGE_LOG):
        if is_global_zero():
            if force:
                logger.info("force: removing the previous outputs of this stage in %s", run_dir)
                _clear_stage_outputs(run_dir)
            config_path = run_dir / CONFIG_FILE
            text = recipe_to_yaml(recipe)
            if config_path.is_file() and config_path.read_text(encoding="utf-8") != text and last.is_file():
                logger.warning("%s differs from the current recipe; resuming with the current recipe", config_path)
            write_text_atomic(config_path, text)
        t = recipe.trainer
        trainer = build_trainer(
            t,
            default_root_dir=run_dir,
            max_epochs=stage.epochs,
            max_steps=stage.max_steps if stage.max_steps is not None else -1,
            accumulate_grad_batches=t.accumulate_grad_batches,
            sync_batchnorm=t.sync_batchnorm,
            deterministic=t.deterministic,
            log_every_n_steps=t.log_every_n_steps,
            limit_train_batches=t.limit_train_batches,
            gradient_clip_val=t.gradient_clip_val,
            logger=TensorBoardLogger(save_dir=run_dir, name=TENSORBOARD_DIR, version=""),
            callbacks=[
                ModelCheckpoint(
                    dirpath=checkpoint_dir,
                    filename="epoch-{epoch:03d}",
                    auto_insert_metric_name=False,
                    save_top_k=-1,
                    every_n_epochs=1,
                    save_last=True,
                    save_on_train_epoch_end=True,
                    enable_version_counter=False,
                ),
                MetricsCSV(run_dir / METRICS_CSV, t.log_every_n_steps),
                EpochProgress(type(system).__name__, len(dataset)),  # type: ignore[arg-type]
            ],
            num_sanity_val_steps=0,
            enable_progress_bar=sys.stderr.isatty(),  # off a terminal the epoch lines report progress
        )
        device_batch = per_device_batch_size(
            stage.batch_size, world_size=trainer.world_size, accumulate=t.accumulate_grad_batches
        )
        loader = make_train_loader(dataset, batch_size=device_batch, recipe=recipe, world_size=trainer.world_size)
        # Trainer.callbacks is set at run time, unknown to type checkers.
        trainer.callbacks.append(_ShuffleEpoch(cast(SeededShuffle, loader.sampler)))  # type: ignore[attr-defined]
        logger.info(
            "%s: %d training images, global batch %d (%d per device on %d device(s)%s), %d epochs%s",
            type(system).__name__,
            len(dataset),  # type: ignore[arg-type]
            stage.batch_size,
            loader.batch_size,
            trainer.world_size,
            f", {t.accumulate_grad_batches} accumulated" if t.accumulate_grad_batches > 1 else "",
            stage.epochs,
            f" (at most {stage.max_steps} steps)" if stage.max_steps is not None else "",
        )
        ckpt_path = last if last.is_file() else None
        if ckpt_path is not None:
            _check_checkpoint(ckpt_path)
            logger.info("resuming from %s", ckpt_path)
        else:
            logger.info("training from scratch in %s", run_dir)
        with quiet_lightning():
            trainer.fit(system, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
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


__all__ = [
    "CHECKPOINT_DIR",
    "LAST_CHECKPOINT",
    "MODEL_FILE",
    "MetricsCSV",
    "TrainingSystem",
    "build_scheduler",
    "build_trainer",
    "finished_model",
    "fit_stage",
    "make_train_loader",
    "per_device_batch_size",
    "seed_everything",
    "stage_inputs",
]
