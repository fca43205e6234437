"""spol.rundir.model_file: a model file, or the model.pt of the run folder a user names instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from spol.rundir import MODEL_FILE, model_file


def test_a_file_is_itself(tmp_path: Path) -> None:
    path = tmp_path / "segmenter.pt"
    path.write_bytes(b"weights")
    assert model_file(path) == path
    assert model_file(str(path), stages=("seg",)) == path


def test_a_stage_folder_gives_its_model(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"weights")
    assert model_file(tmp_path) == tmp_path / MODEL_FILE
    assert model_file(tmp_path, stages=("seg",)) == tmp_path / MODEL_FILE  # the folder's own first


def test_a_pipeline_run_gives_the_first_stage_that_has_one(tmp_path: Path) -> None:
    for stage in ("cam", "seg"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / MODEL_FILE).write_bytes(b"weights")
    assert model_file(tmp_path, stages=("seg",)) == tmp_path / "seg" / MODEL_FILE
    assert model_file(tmp_path, stages=("classifier", "cam")) == tmp_path / "cam" / MODEL_FILE


def test_a_folder_without_a_model_names_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "seg").mkdir()  # a stage that has not finished
    with pytest.raises(FileNotFoundError, match=r"holds no model\.pt or seg/model\.pt; pass a model file"):
        model_file(tmp_path, stages=("seg",))
    with pytest.raises(FileNotFoundError, match=r"missing does not exist"):
        model_file(tmp_path / "missing")
