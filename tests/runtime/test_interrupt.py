"""SIGTERM and SIGINT stop a run at a safe point with `Interrupted` (the CLI's exit codes 143 and 130)."""

from __future__ import annotations

import os
import signal
from contextlib import nullcontext
from typing import Any

import pytest
import torch
from torch import nn

from spol.runtime.interrupt import Interrupted, at_safe_points, requested_signal, stop_on_signals
from spol.runtime.prediction import InferenceSystem, run_inference, trainer_for_device


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_outside_a_loop_stops_at_once_with_the_shells_exit_code(signum: int, code: int) -> None:
    reached = False
    with stop_on_signals(), pytest.raises(Interrupted) as stop:
        _signal_self(signum)
        reached = True
    assert not reached
    assert stop.value.exit_code == code and stop.value.signal_name == signal.Signals(signum).name
    assert str(stop.value) == f"stopped by {signal.Signals(signum).name}"


def test_inside_safe_points_a_signal_waits_for_the_sections_end_and_a_second_one_does_not() -> None:
    steps = []
    with stop_on_signals():
        with pytest.raises(Interrupted), at_safe_points():
            _signal_self(signal.SIGTERM)
            steps.append("after the signal")  # noted, not raised: the loop ends its step
            assert requested_signal() == signal.SIGTERM
        assert steps == ["after the signal"]
        with pytest.raises(Interrupted) as stop, at_safe_points():
            _signal_self(signal.SIGINT)  # the second signal of the run
            steps.append("never")
        assert stop.value.signum == signal.SIGTERM and steps == ["after the signal"]


def test_leaving_restores_the_previous_handlers_and_forgets_the_signal() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    with stop_on_signals(), pytest.raises(Interrupted), at_safe_points():
        _signal_self(signal.SIGTERM)
    assert {signum: signal.getsignal(signum) for signum in before} == before
    assert requested_signal() is None


class _Doubler(InferenceSystem):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Identity()

    def predict_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.net(batch) * 2


@pytest.mark.parametrize("handler", ["spol", "none"])
def test_inference_stops_after_the_batch_it_is_on(handler: str) -> None:
    # "none": spol used as a library; Lightning notes SIGTERM itself and the predict loop still stops.
    consumed: list[Any] = []

    def consume(outputs: torch.Tensor, batch: torch.Tensor) -> None:
        consumed.append(outputs.tolist())
        if len(consumed) == 2:
            _signal_self(signal.SIGTERM)

    items = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    # Lightning's handler replaces SIGTERM's default while the loop runs, so the signal does not end pytest.
    with stop_on_signals() if handler == "spol" else nullcontext():
        with pytest.raises(Interrupted) as stop:
            run_inference(
                _Doubler(), items, trainer=trainer_for_device("cpu"), num_workers=0, batch_size=1,
                consume=consume, progress=False,
            )
    assert stop.value.exit_code == 143
    assert consumed == [[[0.0, 2.0]], [[4.0, 6.0]]]  # both batches consumed, none after
