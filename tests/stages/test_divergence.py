"""A diverged stage stops with an error naming its setting, and leaves no checkpoint of NaN weights."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert message.startswith(f"the {section} stage diverged: the loss became NaN or infinite by step 2 (epoch 1)")
    assert f"lower {section}.lr (now 1e+30, e.g. --set {section}.lr=1e+29)" in message and "--force" in message
    assert isinstance(raised.value, ValueError)  # the CLI's bad-setting exit code
    assert not (run / "model.pt").exists() and not list(run.glob("checkpoints/*.ckpt"))
