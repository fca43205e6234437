"""Stopping on SIGTERM and SIGINT at a safe point, so that rerunning the command resumes.

Schedulers (SLURM, Kubernetes, systemd) stop a job with SIGTERM, a terminal with SIGINT (Ctrl-C).
While `stop_on_signals` is active (the ``spol`` command's whole run), either signal ends the run with
`Interrupted`:

* inside `at_safe_points` (the Lightning fit and predict loops) the signal is noted and the loop
  stops at its next safe point: `spol.runtime.trainer.StopAtSafePoints` checks after every batch
  and at every epoch's start (under DDP the processes agree there), and the section checks once
  more when it ends. Training thus stops between two batches, never while a checkpoint is
  written, and the rerun resumes from the last finished epoch's checkpoint; pseudo masks stop
  once a batch's masks are handed to the writers.
* anywhere else it is raised at once, as Python raises KeyboardInterrupt. Every file spol writes
  is written atomically (`spol.fileio`), so what a stopped run leaves is whole or absent.

A second signal is raised at once. Forked processes (DataLoader workers) ignore both signals: the
main process ends them as it stops. The processes Lightning's launcher started for the other
local ranks get the signal passed on (`take_over_signals`). The command exits with
``128 + signal number`` (143, 130).

Without `stop_on_signals` (spol used as a library) SIGINT raises KeyboardInterrupt as usual, and
the Lightning loops still end with `Interrupted` on SIGTERM (Lightning notes it,
`spol.runtime.trainer.StopAtSafePoints` acts on it). This module imports nothing beyond the
standard library: the command installs its handler before torch is loaded.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that stop a run."""


class Interrupted(BaseException):
    """The run stopped on a signal.

    A BaseException, as KeyboardInterrupt is, so that ``except Exception`` lets it through.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        """``"SIGTERM"``, ``"SIGINT"``, ..."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum


class _State:
    requested: int | None = None  # the first stop signal received
    safe_points = 0  # depth of nested `at_safe_points` sections
    owner: int | None = None  # the process that installed the handler
    forward: Callable[[int], None] | None = None  # passes the signal on to processes this one started


def _handle(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _State.owner:
        return  # a forked loader worker: its parent ends it
    first = _State.requested is None
    if first:
        _State.requested = signum
        if _State.forward is not None:
            _State.forward(signum)
        if _State.safe_points:
            return  # the loop stops at its next safe point
    raise Interrupted(_State.requested or signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into `Interrupted` while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _State.requested, _State.owner = None, os.getpid()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.requested, _State.owner, _State.forward = None, None, None


def take_over_signals(forward: Callable[[int], None] | None = None) -> None:
    """Put `stop_on_signals`' handler back in place of one installed since; pass the signals on with `forward`.

    Lightning installs its own SIGTERM handler while its loops run. Under DDP that handler
    broadcasts from inside the signal handler, a collective that can pair with another one of
    the other processes; spol's processes instead decide together at a safe point. `forward`
    (Lightning's launcher's ``kill``) hands every later stop signal to the processes Lightning
    started, for the rest of the command, as Lightning's handler did during its loops. A no-op
    without `stop_on_signals` (spol used as a library).
    """
    if _State.owner != os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    if forward is not None:
        _State.forward = forward
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)


def requested_signal() -> int | None:
    """The stop signal received under `stop_on_signals`, or None."""
    return _State.requested


def raise_if_requested() -> None:
    """Raise `Interrupted` if a stop signal was received (a safe point)."""
    if _State.requested is not None:
        raise Interrupted(_State.requested)


@contextmanager
def at_safe_points() -> Iterator[None]:
    """Within the block a stop signal is only noted (`spol.runtime.trainer.StopAtSafePoints` acts on it).

    The block's end raises it, if nothing did before.
    """
    _State.safe_points += 1
    try:
        yield
    finally:
        _State.safe_points -= 1
    raise_if_requested()


__all__ = [
    "STOP_SIGNALS",
    "Interrupted",
    "at_safe_points",
    "raise_if_requested",
    "requested_signal",
    "stop_on_signals",
    "take_over_signals",
]
