"""`spol train-cam` / `train-seg` / `train-classifier`: parse, read the dataset, call the stage, print the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny import TINY, as_cli_options
from typer.testing import CliRunner

from spol.cli._app import app
from spol.data import read_dataset
from spol.data.synthetic import SyntheticConfig, generate_synthetic
from spol.localization import Localizer
from spol.models import MFFNet, load_exported_model
from spol.stages.pseudo_masks import generate_pseudo_masks

runner = CliRunner()

FAST = as_cli_options(TINY)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    config = SyntheticConfig(num_classes=2, train_per_class=5, test_per_class=1, image_size=(64, 64))
    generate_synthetic(root, config, force=True, progress=False, workers=1)
    return root


def test_bad_override_and_missing_paths_fail_with_a_message(synthetic: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-cam", "--data", str(synthetic), "--format", "cub", "--out", str(tmp_path / "r"),
                                 "--set", "cam.lrr=1"])
    assert result.exit_code == 2 and "unknown key 'cam.lrr'" in result.output
    result = runner.invoke(
        app, ["train-cam", "--data", str(tmp_path / "none"), "--format", "cub", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["train-seg", "--data", str(synthetic), "--format", "cub", "--out", str(tmp_path / "r"),
                                 "--pseudo-masks", str(tmp_path / "none")])
    assert result.exit_code == 2 and "spol pseudo-masks" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_train_cam_then_seg_from_the_command_line(synthetic: Path, tmp_path: Path) -> None:
    cam_run = tmp_path / "cam"
    result = runner.invoke(
        app, ["train-cam", "--data", str(synthetic), "--format", "cub", "--out", str(cam_run), *FAST]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(cam_run / "model.pt"))
    # The stage's network localizes as it is: MFF-CAM at the CAM rule, which no box validated.
    assert "localizer.json" in result.stderr and "fixed rule" in result.stderr
    cam_localizer = Localizer.from_run(cam_run, device="cpu")
    assert (cam_localizer.method, cam_localizer.kind, cam_localizer.validated) == ("mffcam", "cam", False)
    assert cam_localizer.class_names == read_dataset(synthetic, "cub", progress=False).class_names
    # Held-out val images are not trained on: at most 9 of the 10 train images -> 2 steps of 4.
    assert [
        line.split(",")[2] for line in (cam_run / "metrics.csv").read_text().splitlines() if line.startswith("epoch")
    ] == ["2"]
    # The folder is the command's: a rerun finds the stage done; so does one of an older spol, without the mark.
    mark = {"created_by": "spol", "command": "train-cam"}
    assert json.loads((cam_run / "run.json").read_text()) == mark
    trained = (cam_run / "model.pt").read_bytes()
    for older in (False, True):
        if older:
            (cam_run / "run.json").unlink()
        rerun = runner.invoke(
            app, ["train-cam", "--data", str(synthetic), "--format", "cub", "--out", str(cam_run), *FAST]
        )
        assert rerun.exit_code == 0 and rerun.stdout.strip().endswith(str(cam_run / "model.pt")), rerun.output
        assert (cam_run / "model.pt").read_bytes() == trained
        assert json.loads((cam_run / "run.json").read_text()) == mark

    masks = tmp_path / "pseudo"
    dataset = read_dataset(synthetic, "cub", progress=False)
    generate_pseudo_masks(
        load_exported_model(cam_run / "model.pt"), dataset.split("train"), masks, resize=64, batch_size=4
    )
    seg_run = tmp_path / "seg"
    result = runner.invoke(app, ["train-seg", "--data", str(synthetic), "--format", "cub", "--pseudo-masks", str(masks),
                                 "--out", str(seg_run), "--classifier", str(cam_run), *FAST])
    assert result.exit_code == 0, result.output
    model = load_exported_model(seg_run / "model.pt")
    assert isinstance(model, MFFNet) and model.head == "seg"
    seg_localizer = Localizer.from_run(seg_run, device="cpu")
    assert (seg_localizer.method, seg_localizer.kind, seg_localizer.threshold) == ("spol", "seg", 0.2)
    assert seg_localizer(next((synthetic / "images").rglob("*.jpg"))).class_name in cam_localizer.class_names


@pytest.mark.parametrize("command", ["train-cam", "train-classifier"])
def test_one_class_is_refused_in_one_line(command: str, tmp_path: Path) -> None:
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (32, 32), (200, 10, 10)).save(data / name)
    (data / "labels.csv").write_text("image,label\na.png,bird\nb.png,bird\nc.png,bird\n")
    result = runner.invoke(app, [command, "--data", str(data), "--format", "csv", "--out", str(tmp_path / "r"), *FAST])
    assert result.exit_code == 2, result.output
    assert "train split has images of 1 class; " in result.output and "at least 2 classes" in result.output
    assert not (tmp_path / "r").exists()
    # Labels 1, read as indices: class 0 has no image, which the warning names before the refusal.
    (data / "labels.csv").write_text("image,label\na.png,1\nb.png,1\nc.png,1\n")
    result = runner.invoke(app, [command, "--data", str(data), "--format", "csv", "--out", str(tmp_path / "r"), *FAST])
    assert result.exit_code == 2, result.output
    assert "warning: 1 problem(s) while reading" in result.stderr and "(0) have no image" in result.stderr
    assert "train split has images of 1 class of its 2;" in result.output
