"""`spol data synth`: writes the CUB layout, options reach the config, refuses to overwrite."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from spol.cli import app

runner = CliRunner()
ARGS = ["--classes", "2", "--train", "2", "--test", "1", "--size", "64", "--workers", "1", "--no-progress"]


def test_synth_writes_the_asked_dataset(tmp_path):
    out = tmp_path / "synthetic"
    result = runner.invoke(app, ["data", "synth", str(out), *ARGS, "--seed", "3", "--object-area", "0.2", "0.3"])
    assert result.exit_code == 0, result.output
    assert "wrote 6 images" in result.stdout
    config = json.loads((out / "synthetic_config.json").read_text())
    assert config["seed"] == 3 and config["num_classes"] == 2 and config["image_size"] == [64, 64]
    assert config["object_area"] == [0.2, 0.3]
    lines = (out / "images.txt").read_text().splitlines()
    assert len(lines) == 6
    with Image.open(out / "images" / lines[0].split()[1]) as image:
        assert image.size == (64, 64)
    split = (out / "train_test_split.txt").read_text().split()[1::2]
    assert split.count("1") == 4 and split.count("0") == 2


def test_synth_refuses_another_generation_without_force(tmp_path):
    out = tmp_path / "synthetic"
    assert runner.invoke(app, ["data", "synth", str(out), *ARGS]).exit_code == 0
    assert runner.invoke(app, ["data", "synth", str(out), *ARGS]).exit_code == 0  # twice in a row: already there
    result = runner.invoke(app, ["data", "synth", str(out), *ARGS, "--seed", "5"])
    assert result.exit_code == 2 and "--force" in result.stderr
    assert runner.invoke(app, ["data", "synth", str(out), *ARGS, "--seed", "5", "--force"]).exit_code == 0


def test_synth_reports_bad_options_by_name(tmp_path):
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), *ARGS, "--object-area", "0.6", "0.2"])
    assert result.exit_code == 2 and "object_area" in result.stderr
    result = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), "--preset", "nope"])
    assert result.exit_code == 2 and "--preset" in result.stderr


def test_help_names_both_cues_the_classes_differ_by():
    from spol.data.synthetic import SYNTHETIC_PRESETS

    # Every preset gives each class its own body texture besides its part (class_bodies).
    assert all(config.class_bodies for config in SYNTHETIC_PRESETS.values())
    text = " ".join(runner.invoke(app, ["data", "synth", "--help"]).output.split())
    assert "only by a small part" not in text
    assert "the body's texture" in text and "small coloured part" in text


def test_synth_into_a_cub_folder_it_did_not_make_is_refused_without_force(tmp_path):
    out = tmp_path / "CUB_200_2011"
    assert runner.invoke(app, ["data", "synth", str(out), *ARGS]).exit_code == 0
    (out / "synthetic_config.json").unlink()  # now a CUB folder spol cannot tell from a user's
    images = sorted(out.rglob("*.jpg"))
    before = [path.read_bytes() for path in images]
    result = runner.invoke(app, ["data", "synth", str(out), *ARGS, "--seed", "5"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert str(out) in result.stderr and "did not make" in result.stderr and "--force" in result.stderr
    assert [path.read_bytes() for path in images] == before
