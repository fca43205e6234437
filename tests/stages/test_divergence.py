"""A diverged stage stops with an error naming its setting, and leaves no checkpoint of NaN weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spol.config import Recipe, with_overrides
from spol.data import Dataset
from spol.runtime.divergence import TrainingDivergedError
from spol.stages import train_cam


@pytest.mark.parametrize("baseline", [False, True])
def test_a_nan_loss_stops_the_stage_naming_its_learning_rate(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path, baseline: bool
) -> None:
    section = "baseline" if baseline else "cam"
    # Step 1's update at this rate makes step 2's forward pass overflow: its loss is not finite.
    recipe = with_overrides(tiny_recipe, [f"{section}.lr=1e30"])
    run = tmp_path / section
    with pytest.raises(TrainingDivergedError) as raised:
        train_cam(recipe, tiny_dataset, run, baseline=baseline)
    message = str(raised.value)
    assert message.startswith(
        f"the {section} stage diverged: the loss became NaN, infinite or above 10000 by step 2 (epoch 1)"
    )
    assert f"lower {section}.lr (now 1e+30, e.g. --set {section}.lr=1e+29)" in message and "--force" in message
    assert isinstance(raised.value, ValueError)  # the CLI's bad-setting exit code
    assert not (run / "model.pt").exists() and not list(run.glob("checkpoints/*.ckpt"))


def test_a_huge_finite_loss_stops_the_stage(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    # At this rate step 3's loss is about 3e6, finite; the network then collapses to a constant (loss ln 2)
    # and used to train on to the end and export it. The trajectory at this rate is chaotic: these numbers hold on
    # two torch threads (on one, the loss peaks near 4e3 and the network collapses without crossing 1e4).
    torch.set_num_threads(2)
    recipe = with_overrides(tiny_recipe, ["cam.lr=1e3", "cam.epochs=2"])
    expected = r"the loss became NaN, infinite or above 10000 by step 3 \(epoch 2\)"
    with pytest.raises(TrainingDivergedError, match=expected):
        train_cam(recipe, tiny_dataset, tmp_path / "run")
    assert not (tmp_path / "run" / "model.pt").exists()
