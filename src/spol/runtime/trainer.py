"""The Lightning Trainer factory shared by training and inference: devices, precision, memory format."""

from __future__ import annotations

import logging
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from spol.config import TrainerConfig, multiprocessing_refusal
from spol.runtime.distributed import cpu_group, is_distributed
from spol.runtime.interrupt import Interrupted, requested_signal, take_over_signals


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


# Lightning logs a product tip on every Trainer; it is noise in a run's log.
_DROP_ADVERTISING = _DropMessages("litlogger")
# Lightning notes the SIGTERM it sees; spol says itself how it stops and how to resume (spol.runtime.interrupt).
_DROP_SIGNAL_NOTES = _DropMessages("Received SIGTERM", "Bypassing SIGTERM")


class _InfoWhenVerbose(logging.Filter):
    # Lightning's INFO lines ("GPU available: False, used: False", "`Trainer.fit` stopped") tell a user nothing
    # to act on: its console shows them only when spol logs debug messages (spol -v); train.log keeps them.
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or logging.getLogger("spol").isEnabledFor(logging.DEBUG)


_INFO_WHEN_VERBOSE = _InfoWhenVerbose()


def _quiet_lightning_console() -> None:
    """Filter Lightning's own console handlers (``lightning`` always has one) with `_InfoWhenVerbose`."""
    for name in ("lightning", "lightning.pytorch"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:  # not a stage's train.log (a FileHandler)
                handler.addFilter(_INFO_WHEN_VERBOSE)


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
        # Fewer batches per epoch than Trainer(log_every_n_steps): metrics.csv and the epoch lines report anyway.
        warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")
        yield


class StopAtSafePoints(Callback):
    """Ends a Lightning fit or predict loop with `Interrupted` at the first safe point after a stop signal.

    The signal is the one `spol.runtime.interrupt.stop_on_signals` noted (its handler replaces
    Lightning's while the loop runs, `spol.runtime.interrupt.take_over_signals`), or the SIGTERM
    Lightning notes itself (spol used as a library). Safe points: after a training batch, at an
    epoch's start (the last epoch's checkpoint written) and after a predict batch (its outputs
    consumed). Under DDP the training processes vote at each of them, on CPU tensors (no device
    sync), so that they all stop at the same step; predict processes, which share no step, stop on
    their own.
    """

    def __init__(self) -> None:
        self._vote_group: Any = None

    @staticmethod
    def _take_over(trainer: L.Trainer) -> None:
        # Lightning installed its SIGTERM handler just before its loop started. Its launcher starts the
        # other local ranks at the first fit and keeps them for the whole command (later Trainers start none).
        launcher = trainer.strategy.launcher
        take_over_signals(launcher.kill if isinstance(launcher, _SubprocessScriptLauncher) and launcher.procs else None)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take_over(trainer)
        self._vote_group = cpu_group() if is_distributed() else None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take_over(trainer)

    def _check(self, trainer: L.Trainer, *, vote: bool) -> None:
        signum = requested_signal()
        if signum is None and trainer.received_sigterm:  # Lightning's note, without spol's handler
            signum = signal.SIGTERM
        if vote and self._vote_group is not None:
            votes = torch.tensor([signum == signal.SIGTERM, signum == signal.SIGINT], dtype=torch.int64)
            torch.distributed.all_reduce(votes, group=self._vote_group)
            signum = signal.SIGTERM if votes[0] else signal.SIGINT if votes[1] else None
        if signum is not None:
            raise Interrupted(signum)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, vote=True)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._check(trainer, vote=True)

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._check(trainer, vote=False)


def build_trainer(config: TrainerConfig, *, callbacks: list[Callback] | None = None, **kwargs: Any) -> L.Trainer:
    """A Lightning Trainer on the recipe's accelerator, devices, nodes, strategy, precision and memory format.

    `kwargs` add the job's own arguments (epochs, logger, ...). Training and inference both build
    their Trainer here, so they run on the same devices with the same precision, and both stop at
    their next batch on SIGTERM / SIGINT (`StopAtSafePoints`; run them under
    `spol.runtime.interrupt.at_safe_points`).
    """
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DROP_ADVERTISING)
    _quiet_lightning_console()
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").addFilter(_DROP_SIGNAL_NOTES)
    callbacks = [*(callbacks or []), StopAtSafePoints()]
    if config.channels_last:
        callbacks.append(ChannelsLast())
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,  # type: ignore[arg-type]
        enable_model_summary=False,
        callbacks=callbacks,
        **kwargs,
    )
    launcher = getattr(trainer.strategy, "launcher", None)
    if isinstance(launcher, _MultiProcessingLauncher):
        # Lightning's choice for "auto" with several devices in a notebook, or an explicit spawn/fork strategy.
        raise ValueError(multiprocessing_refusal(config.strategy))
    return trainer


__all__ = ["ChannelsLast", "StopAtSafePoints", "build_trainer", "quiet_lightning"]
