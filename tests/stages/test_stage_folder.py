"""A stage's run folder: inputs recorded, a finished stage reused, other inputs refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from spol.rundir import INPUTS_FILE, MODEL_FILE
from spol.stages.stage_folder import finished_model


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
