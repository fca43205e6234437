"""spol.rundir: the model file a user names (`model_file`) and the output folder a command claims (`claim_folder`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spol.rundir import (
    LOCALIZER_FILE,
    MODEL_FILE,
    PIPELINE_OUTPUTS,
    RUN_RECORD,
    check_folder,
    claim_folder,
    claimed_folder,
    enclosing_run,
    is_run_folder,
    made_by,
    model_file,
    stage_outputs,
)


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


# Output folders: each command claims its --out (spol.rundir.claim_folder).

CAM = stage_outputs("train-cam")


def _mark(folder: Path) -> dict:
    return json.loads((folder / RUN_RECORD).read_text())


def test_a_new_folder_is_made_and_marked_as_the_commands_and_taken_again(tmp_path: Path) -> None:
    out = tmp_path / "a" / "cam"
    claim_folder(out, CAM)
    assert _mark(out) == {"created_by": "spol", "command": "train-cam"} and made_by(out) == "train-cam"
    for name in ("config.yaml", "model.pt", "inputs.json", "checkpoints"):
        (out / name).mkdir() if name == "checkpoints" else (out / name).write_text("spol's")
    claim_folder(out, CAM)  # a rerun resumes in it
    assert is_run_folder(out) and enclosing_run(out / "checkpoints") == out


def test_a_folder_of_the_users_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for number in range(6):
        (photos / f"{number}.jpg").write_bytes(bytes([number]) * 10)
    before = {path.name: path.read_bytes() for path in photos.iterdir()}
    for outputs in (CAM, stage_outputs("train-classifier"), PIPELINE_OUTPUTS):
        with pytest.raises(FileExistsError) as refused:
            claim_folder(photos, outputs)
        message = str(refused.value)
        assert message.startswith(f"{photos} holds files, and is not a spol run folder (0.jpg, 1.jpg, 2.jpg, 3.jpg")
        assert "and 2 more); choose an empty or new output folder" in message and "\n" not in message
        assert ("--overwrite-foreign" in message) == (outputs is PIPELINE_OUTPUTS)
    assert {path.name: path.read_bytes() for path in photos.iterdir()} == before


def test_a_users_model_alone_is_not_taken_for_a_finished_stage(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"the user's network")  # --force would delete it
    with pytest.raises(FileExistsError, match=r"is not a spol run folder \(model\.pt\)"):
        claim_folder(tmp_path, CAM)
    assert [p.name for p in tmp_path.iterdir()] == [MODEL_FILE]


def test_a_stage_folder_of_an_older_spol_without_the_mark_is_taken_and_marked(tmp_path: Path) -> None:
    for proof in ("inputs.json", "checkpoints/last.ckpt"):
        stage = tmp_path / proof.replace("/", "_")
        (stage / "checkpoints").mkdir(parents=True)
        for name in (proof, "config.yaml", "train.log", "metrics.csv", "model.pt", "localizer.json"):
            (stage / name).write_text("spol's")
        claim_folder(stage, CAM)
        assert made_by(stage) == "train-cam"
    older = tmp_path / "older"  # an older spol's stage folder with a file of the user's in it
    older.mkdir()
    (older / "inputs.json").write_text("{}")
    (older / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds files `spol train-cam` does not write \(notes\.txt\); choose"):
        claim_folder(older, CAM)
    assert not (older / RUN_RECORD).exists()


def test_a_marked_folder_with_the_users_files_names_them(tmp_path: Path) -> None:
    claim_folder(tmp_path / "cam", CAM)
    (tmp_path / "cam" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"cam holds files spol did not write \(notes\.txt\); choose an empty"):
        claim_folder(tmp_path / "cam", CAM)
    assert (tmp_path / "cam" / "notes.txt").read_text() == "mine"


def test_another_commands_folder_is_refused(tmp_path: Path) -> None:
    claim_folder(tmp_path / "cam", CAM)
    with pytest.raises(FileExistsError, match=r"--out .*cam is the run folder of `spol train-cam`.*`spol train-seg`"):
        claim_folder(tmp_path / "cam", stage_outputs("train-seg"))
    run = tmp_path / "run"  # a pipeline run marked before marks named their command
    run.mkdir()
    (run / RUN_RECORD).write_text(json.dumps({"created_by": "spol", "dataset": {"images": 3}}))
    assert made_by(run) == "pipeline"
    claim_folder(run)  # still the pipeline's
    with pytest.raises(FileExistsError, match=r"is the run folder of `spol pipeline`"):
        claim_folder(run, CAM)
    with pytest.raises(FileExistsError, match=r"is the run folder of `spol train-cam`"):
        claim_folder(tmp_path / "cam", PIPELINE_OUTPUTS, overwrite_foreign=True)


@pytest.mark.parametrize("outer", ["pipeline", "train-cam", "localizer.json"])
def test_a_folder_inside_another_run_folder_is_refused(outer: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    if outer == "localizer.json":
        run.mkdir()
        (run / LOCALIZER_FILE).write_text("{}")
    else:
        claim_folder(run, PIPELINE_OUTPUTS if outer == "pipeline" else CAM)
    before = sorted(p.name for p in run.iterdir())
    for inner, outputs in ((run / "cam", CAM), (run / "sub" / "deeper", PIPELINE_OUTPUTS)):
        with pytest.raises(FileExistsError) as refused:
            claim_folder(inner, outputs, overwrite_foreign=True)
        assert str(refused.value) == (
            f"--out {inner} lies in the spol run folder {run}; its files are the run's own: choose an --out outside it"
        )
    assert sorted(p.name for p in run.iterdir()) == before


def test_a_folder_that_localize_wrote_into_is_its_own_and_any_other_needs_force(tmp_path: Path) -> None:
    from spol.localization.folder import LOCALIZE_OUTPUTS

    (tmp_path / "predictions.jsonl").write_text("")
    (tmp_path / "a_mask.png").write_bytes(b"png")
    check_folder(tmp_path, LOCALIZE_OUTPUTS)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds files `spol localize` did not write \(notes\.txt\).*--force"):
        check_folder(tmp_path, LOCALIZE_OUTPUTS)
    check_folder(tmp_path, LOCALIZE_OUTPUTS, overwrite_foreign=True)
    assert not (tmp_path / RUN_RECORD).exists()  # localize leaves no mark: its folders are no run folders


def test_a_claimed_folder_that_a_failed_command_left_empty_goes_again(tmp_path: Path) -> None:
    out = tmp_path / "cam"
    with pytest.raises(ValueError, match="one class"), claimed_folder(out, CAM):
        assert made_by(out) == "train-cam"
        raise ValueError("one class")
    assert not out.exists()
    with pytest.raises(ValueError, match="diverged"), claimed_folder(out, CAM):
        (out / "train.log").write_text("started")
        raise ValueError("diverged")
    assert made_by(out) == "train-cam" and (out / "train.log").is_file()  # kept, to resume from
    with pytest.raises(ValueError, match="again"), claimed_folder(out, CAM):
        raise ValueError("again")
    assert out.is_dir()  # not made by this call: never removed


def test_the_parent_folders_a_failed_claim_made_go_with_it_and_no_others(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    out = tmp_path / "runs" / "2026" / "december" / "cam"
    with pytest.raises(ValueError, match="one class"), claimed_folder(out, CAM):
        assert made_by(out) == "train-cam"
        raise ValueError("one class")
    assert not (tmp_path / "runs" / "2026").exists() and (tmp_path / "runs").is_dir()
    (tmp_path / "runs" / "2026").mkdir()
    (tmp_path / "runs" / "2026" / "notes.txt").write_text("the user's")
    with pytest.raises(ValueError, match="one class"), claimed_folder(out, CAM):
        raise ValueError("one class")
    assert sorted(p.name for p in (tmp_path / "runs" / "2026").iterdir()) == ["notes.txt"]
