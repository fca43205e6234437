"""Faults a user meets, each ending in a clear error or a counted skip, never in lost or mixed-up files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import TINY_PIPELINE, tiny_synthetic
from typer.testing import CliRunner

import spol
from spol.cli._app import app
from spol.config import load_recipe
from spol.data import read_dataset, records_digest
from spol.evaluation import NpyScoreMaps
from spol.models import resolve_device
from spol.pipeline import run_pipeline
from spol.pipeline.run import identify_dataset, prepare_splits
from spol.rundir import FolderInUseError, RunLock
from spol.stages import train_cam

RESULTS = ("metrics.json", "report.html", "localizer.json")


@pytest.fixture
def finished(finished_pipeline):
    return finished_pipeline.recipe, finished_pipeline.data, finished_pipeline.run.parent


def _copy_run(finished, tmp_path: Path) -> Path:
    _, _, root = finished
    shutil.copytree(root / "run", tmp_path / "run")
    return tmp_path / "run"


def test_another_dataset_into_the_same_run_folder_is_refused(finished, tmp_path):  # F2
    recipe, _, _ = finished
    run = _copy_run(finished, tmp_path)
    other = tiny_synthetic(tmp_path / "other", seed=4)
    before = {name: (run / name).read_bytes() for name in (*RESULTS, "run.json")}
    refused = r"another dataset than now: its index .* file\(s\) changed \(images/.*--force"
    with pytest.raises(ValueError, match=refused):
        run_pipeline(recipe, other, "cub", run, progress=False)
    assert {name: (run / name).read_bytes() for name in before} == before


def _models(run: Path) -> dict[str, int]:
    return {str(path.relative_to(run)): path.stat().st_mtime_ns for path in run.rglob("model.pt")}


@pytest.mark.slow
def test_the_same_dataset_under_any_spelling_of_its_path_is_the_same_dataset(finished, tmp_path, monkeypatch):
    recipe, data, _ = finished  # the run was made with the absolute path
    run = _copy_run(finished, tmp_path)
    models, metrics = _models(run), (run / "metrics.json").read_text()
    monkeypatch.chdir(data.parent)
    run_pipeline(recipe, f"../{data.parent.name}/data", "cub", run, report_samples=1, progress=False)
    assert _models(run) == models and (run / "metrics.json").read_text() == metrics  # nothing trained again
    copy = tmp_path / "elsewhere" / "data"
    shutil.copytree(data, copy)  # the same files in another folder: the same dataset
    for spelling in ("data", "./data", str(data), str(copy)):
        identify_dataset(read_dataset(spelling, "cub", progress=False), run, check=True)  # the pipeline's check


def test_a_touched_image_is_the_same_one_and_other_bytes_are_named(finished, tmp_path):
    _, data, _ = finished
    run = _copy_run(finished, tmp_path)
    image = sorted((data / "images").rglob("*.jpg"))[5]
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    image = copy / image.relative_to(data)
    os.utime(image)  # touch: a new mtime, the same bytes
    identify_dataset(read_dataset(copy, "cub", progress=False), run, check=True)
    status = image.stat()
    flipped = bytearray(image.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01  # other bytes of the same size, its mtime set back
    image.write_bytes(bytes(flipped))
    os.utime(image, ns=(status.st_atime_ns, status.st_mtime_ns))
    name = image.relative_to(copy).as_posix()
    with pytest.raises(ValueError, match=rf"another dataset than now: 1 file\(s\) changed \({name}\).*--force"):
        identify_dataset(read_dataset(copy, "cub", progress=False), run, check=True)


def _legacy_fingerprint(dataset) -> dict:
    # What spol 0.2 recorded: paths as the records spelled them, each image's size and mtime.
    stamps = "\n".join(f"{r.path}|{r.path.stat().st_size}:{r.path.stat().st_mtime_ns}" for r in dataset.records)
    return {
        "format": dataset.format,
        "root": str(Path(dataset.root).resolve()),
        "images": len(dataset.records),
        "classes": dataset.num_classes,
        "index_sha256": records_digest(dataset.records),
        "files_sha256": hashlib.sha256(stamps.encode()).hexdigest(),
    }


@pytest.mark.slow
def test_a_run_recorded_by_an_older_spol_is_recorded_anew_when_its_dataset_is_unchanged(finished, tmp_path):
    recipe, data, _ = finished
    run = _copy_run(finished, tmp_path)
    dataset = read_dataset(data, "cub", progress=False)
    train = prepare_splits(dataset, recipe)[0].dataset.split("train")
    record = json.loads((run / "run.json").read_text())
    record["dataset"] = _legacy_fingerprint(dataset)
    record["verified"] = {"index_sha256": "older", "files_sha256": "older", "unreadable": {}}
    (run / "run.json").write_text(json.dumps(record))
    (run / "dataset_files.jsonl").unlink()
    for inputs in run.rglob("inputs.json"):
        recorded = json.loads(inputs.read_text())
        if recorded["train_images"] == records_digest(train, data):
            recorded["train_images"] = records_digest(train)  # as spelled
        inputs.write_text(json.dumps(recorded))
    models = _models(run)
    run_pipeline(recipe, data, "cub", run, report_samples=1, progress=False)
    assert _models(run) == models
    assert "content_sha256" in json.loads((run / "run.json").read_text())["dataset"]
    assert {json.loads(p.read_text())["train_images"] for p in run.rglob("inputs.json")} == {
        records_digest(train, data)
    }
    # An older record that no spelling matches any more cannot be checked: refused, with the way on.
    record["dataset"]["files_sha256"] = "of files touched since"
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"recorded by an older spol.*--data spelled as then.*--force"):
        run_pipeline(recipe, data, "cub", run, progress=False)


def test_a_folder_of_the_users_is_refused_and_left_as_it_was(finished, tmp_path):  # F3, without --force
    recipe, data, _ = finished
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"my": "numbers"}')
    for force in (False, True):
        with pytest.raises(FileExistsError, match="not a spol run folder.*--overwrite-foreign"):
            run_pipeline(recipe, data, "cub", mine, force=force, progress=False)
    assert [p.name for p in mine.iterdir()] == ["metrics.json"] and "my" in (mine / "metrics.json").read_text()
    run = _copy_run(finished, tmp_path)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        run_pipeline(recipe, data, "cub", run, progress=False)


@pytest.mark.slow
def test_force_replaces_only_what_spol_wrote(finished, tmp_path):  # F3, with --force
    recipe, data, _ = finished
    run = _copy_run(finished, tmp_path)
    keep = [run / "cam" / "checkpoints" / "notes.txt", run / "seg" / "tb" / "mine.txt", run / "pseudo_masks" / "my.png"]
    for path in keep:
        path.write_text("the user's")
    old_model = (run / "cam" / "model.pt").stat().st_mtime_ns
    run_pipeline(recipe, data, "cub", run, force=True, report_samples=1, progress=False)
    assert all(path.read_text() == "the user's" for path in keep)
    assert (run / "cam" / "model.pt").stat().st_mtime_ns != old_model
    assert sorted(p.name for p in (run / "cam" / "checkpoints").iterdir()) == [
        "epoch-000.ckpt",
        "last.ckpt",
        "notes.txt",
    ]


def test_a_killed_force_rerun_leaves_no_old_results_beside_new_models(finished, tmp_path, monkeypatch):  # F4
    recipe, data, _ = finished
    run = _copy_run(finished, tmp_path)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the rerun dies while training

    monkeypatch.setattr("spol.pipeline.graph.train_cam", killed)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(recipe, data, "cub", run, force=True, progress=False)
    assert not any((run / name).exists() for name in RESULTS)
    with pytest.raises(FileNotFoundError, match="localizer.json"):
        spol.Localizer.from_run(run)
    assert not (run / ".spol.lock").exists()  # the lock goes with the process


def test_outputs_that_cannot_be_written_are_one_line_errors(finished, tmp_path, monkeypatch):  # F5
    _, data, _ = finished
    runner = CliRunner()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = ["pipeline", "--recipe", "cpu", "--data", str(data), "--format", "cub"]
    result = runner.invoke(app, [*base, "--out", str(a_file)])
    assert result.exit_code == 2 and "is a file" in result.stderr and "Traceback" not in result.output

    def read_only(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("spol.fileio.write_bytes_atomic", read_only)
    monkeypatch.setattr("spol.rundir.write_json_atomic", lambda path, obj: read_only(path, b""))
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr and "run.json" in result.stderr and "permission denied" in result.stderr


def test_a_dangling_link_as_out_is_named_with_its_target(finished, tmp_path):
    _, data, _ = finished
    link = tmp_path / "runs"
    link.symlink_to(tmp_path / "unmounted" / "runs")
    result = CliRunner().invoke(
        app, ["pipeline", "--recipe", "cpu", "--data", str(data), "--format", "cub", "--out", str(link / "mine")]
    )
    assert result.exit_code == 2 and "File exists" not in result.stderr, result.output
    assert f"{link} is a symbolic link to {tmp_path / 'unmounted' / 'runs'}, which does not exist" in result.stderr


def test_a_full_disk_leaves_no_partial_file_under_its_final_name(tmp_path):  # F5, data synth and Pillow
    # A file-size limit makes every write past 20 kB fail, as a full disk does, without a tmpfs.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        from typer.testing import CliRunner
        from spol.cli._app import app
        result = CliRunner().invoke(app, ["data", "synth", {str(tmp_path / "synth")!r}, "--classes", "1", "--train",
                                          "2", "--test", "0", "--size", "256", "--workers", "1", "--no-progress"])
        print(result.exit_code)
        print(result.stderr)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    code, output = done.stdout.split("\n", 1)
    assert code == "2", done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    assert "synth" in errors[0] and ".jpg" in errors[0] and ("too large" in errors[0] or "disk full" in errors[0])
    images = [p for p in (tmp_path / "synth").rglob("*.jpg")]
    for path in images:  # whatever is under a final name is a whole image
        with Image.open(path) as image:
            image.load()
    assert not list((tmp_path / "synth").rglob("*.tmp"))


def test_a_truncated_checkpoint_is_named_with_the_fix(finished, tmp_path):  # F6
    recipe, data, _ = finished
    from spol.data import hold_out_val, read_dataset

    dataset = hold_out_val(read_dataset(data, "cub"), share=0.25, seed=0)
    run = tmp_path / "cam"
    train_cam(recipe, dataset, run)
    (run / "model.pt").unlink()
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"last.ckpt is truncated or corrupt.*--force"):
        train_cam(recipe, dataset, run)


def test_a_second_pipeline_on_a_folder_in_use_is_refused_and_a_dead_lock_is_taken_over(finished, tmp_path):
    recipe, data, _ = finished
    run = _copy_run(finished, tmp_path)
    with RunLock(run), pytest.raises(FolderInUseError, match=f"pid {os.getpid()}"):
        run_pipeline(recipe, data, "cub", run, progress=False)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".spol.lock").write_text(json.dumps({"pid": int(gone.stdout), "host": os.uname().nodename}))
    with RunLock(run):
        assert json.loads((run / ".spol.lock").read_text())["pid"] == os.getpid()
    assert not (run / ".spol.lock").exists()


def test_a_failed_invocation_does_not_block_its_corrected_rerun(finished, tmp_path):
    _, data, _ = finished
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="typo.pth"):
        recipe = load_recipe("cpu", (*TINY_PIPELINE, "weights=/no/such/typo.pth"))
        run_pipeline(recipe, data, "cub", run, progress=False)
    # The corrected recipe is another recipe, but nothing was made with the first one: no refusal.
    with pytest.raises(FileNotFoundError, match="other.pth"):
        recipe = load_recipe("cpu", (*TINY_PIPELINE, "weights=/no/such/other.pth"))
        run_pipeline(recipe, data, "cub", run, progress=False)


@pytest.mark.slow
def test_csv_images_outside_the_folder_go_through_every_stage(tmp_path):  # F1
    rng = np.random.default_rng(0)
    folder, outside = tmp_path / "dataset", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    rows = ["image,label,x0,y0,x1,y1,split"]
    for i in range(18):
        image = rng.integers(0, 60, (48, 48, 3), dtype=np.uint8)
        image[10:30, 12:34, i % 3] = 250
        split = "test" if i >= 12 else "train"
        if i % 3 == 0:
            path, name = outside / f"{i}.png", str(outside / f"{i}.png")  # absolute
        elif i % 3 == 1:
            path, name = outside / f"{i}.png", f"../elsewhere/{i}.png"  # leaves the CSV's folder
        else:
            path, name = folder / f"{i}.png", f"{i}.png"
        Image.fromarray(image).save(path)
        rows.append(f"{name},c{i % 3},12,10,34,30,{split}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    summary = CliRunner().invoke(app, ["data", "summary", str(folder), "--format", "csv", "--json"])
    assert summary.exit_code == 0 and json.loads(summary.stdout)["problems"] == []
    recipe = load_recipe("cpu", (*TINY_PIPELINE, "data.val_share=0.25"))
    result = run_pipeline(recipe, folder, "csv", tmp_path / "run", report_samples=1, progress=False)
    assert set(result.metrics) == {"spol", "mffcam", "cam"}
    masks = tmp_path / "run" / "pseudo_masks"
    assert len(list((masks / "_outside").glob("*.png"))) >= 6 and not list(tmp_path.glob("elsewhere/*.png.png"))


def test_score_maps_are_read_inside_their_folder_only(tmp_path):
    maps = NpyScoreMaps(tmp_path / "maps")
    for image_id in ("../x.jpg", "a/../../x.jpg", "/etc/x.jpg"):
        assert maps.path(image_id).resolve().is_relative_to((tmp_path / "maps").resolve())
    with pytest.raises(FileNotFoundError, match="missing"):
        maps("../x.jpg")


def test_a_device_that_is_not_there_is_named():
    with pytest.raises(ValueError, match="cuda:99.*visible; use --device cpu or auto"):
        resolve_device("cuda:99")
    with pytest.raises(ValueError, match="not a torch device name"):
        resolve_device("gpu0")
    assert resolve_device("cpu").type == "cpu"
