"""A stage's run folder: inputs recorded, a finished stage reused, other inputs refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from spol.rundir import INPUTS_FILE, MODEL_FILE
from spol.runtime.stage_folder import finished_model


def test_a_stage_made_from_other_inputs_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "seg"
    assert finished_model(run_dir, force=False, inputs={"pseudo_masks": "a"}) is None  # fresh: train
    assert (run_dir / INPUTS_FILE).read_text().strip().startswith("{")
    (run_dir / MODEL_FILE).write_bytes(b"trained")
    assert finished_model(run_dir, force=False, inputs={"pseudo_masks": "a"}) == run_dir / MODEL_FILE
    with pytest.raises(ValueError, match="another training input than now: pseudo_masks.*--force"):
        finished_model(run_dir, force=False, inputs={"pseudo_masks": "b"})
    assert finished_model(run_dir, force=True, inputs={"pseudo_masks": "b"}) is None
    (run_dir / MODEL_FILE).write_bytes(b"retrained")
    assert finished_model(run_dir, force=False, inputs={"pseudo_masks": "b"}) == run_dir / MODEL_FILE


def test_a_stage_trained_on_more_devices_is_reused_on_fewer(tmp_path: Path) -> None:
    import json

    from spol.config import load_recipe
    from spol.runtime.stage_folder import stage_inputs

    run_dir = tmp_path / "cam"
    eight = load_recipe("cpu", ["trainer.devices=8", "trainer.num_nodes=2", "trainer.strategy=ddp"])
    one = load_recipe("cpu", ["trainer.devices=1"])
    assert stage_inputs(eight, ("cam",), []) == stage_inputs(one, ("cam",), [])  # the global batch is the same
    # A stage recorded by spol 0.2, with the devices in its inputs, is reused too.
    recorded = stage_inputs(eight, ("cam",), [])
    recorded["trainer"] = {**recorded["trainer"], "devices": 8, "num_nodes": 2, "strategy": "ddp"}
    run_dir.mkdir()
    (run_dir / INPUTS_FILE).write_text(json.dumps(recorded))
    (run_dir / MODEL_FILE).write_bytes(b"trained on 16 GPUs")
    assert finished_model(run_dir, force=False, inputs=stage_inputs(one, ("cam",), [])) == run_dir / MODEL_FILE
    with pytest.raises(ValueError, match="another training input than now: trainer"):  # the precision changes weights
        finished_model(
            run_dir,
            force=False,
            inputs=stage_inputs(load_recipe("cpu", ["trainer.precision=bf16-mixed"]), ("cam",), []),
        )
