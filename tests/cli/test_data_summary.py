"""`spol data summary` on tiny generated datasets: text, --json, --split, --verify, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from spol.cli import app

runner = CliRunner()
KEYS = {"format", "images", "classes", "boxes", "images_with_masks", "problems"}


def _cub(root: Path) -> Path:
    """Three images (two train, one test) of two classes; a fourth listed image is missing."""
    rng = np.random.default_rng(0)
    for name in ("001.a/1.jpg", "001.a/2.jpg", "002.b/3.jpg"):
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(root / "images" / name, quality=95)
    files = {
        "images.txt": "1 001.a/1.jpg\n2 001.a/2.jpg\n3 002.b/3.jpg\n4 002.b/4.jpg\n",
        "classes.txt": "1 001.a\n2 002.b\n",
        "image_class_labels.txt": "1 1\n2 1\n3 2\n4 2\n",
        "bounding_boxes.txt": "1 0 0 10 10\n2 50 0 20 10\n3 1 1 5 5\n4 1 1 5 5\n",
        "train_test_split.txt": "1 1\n2 1\n3 0\n4 0\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_text_summary_lists_counts_and_every_problem(tmp_path):
    root = _cub(tmp_path)
    result = runner.invoke(app, ["data", "summary", str(root), "--format", "cub"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "images: 3 (train 2, test 1)" in out
    assert "classes: 2" in out and "boxes: 3" in out and "images with masks: 0" in out
    assert "problems: 2" in out
    assert f"{root / 'images' / '002.b' / '4.jpg'}: image file missing" in out
    assert (
        f"{root / 'bounding_boxes.txt'}:2: box (50, 0, 70, 10) outside 60x40 image, clipped to (50, 0, 60, 10)" in out
    )


def test_json_is_one_object(tmp_path):
    root = _cub(tmp_path)
    result = runner.invoke(app, ["data", "summary", str(root), "--format", "cub", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == KEYS
    assert summary["format"] == "cub" and summary["images"] == {"train": 2, "test": 1}
    assert summary["classes"] == 2 and summary["boxes"] == 3 and summary["images_with_masks"] == 0
    assert [set(p) for p in summary["problems"]] == [{"problem", "path"}, {"problem", "line"}]

    only_train = json.loads(
        runner.invoke(app, ["data", "summary", str(root), "-f", "cub", "--split", "train", "--json"]).stdout
    )
    assert only_train["images"] == {"train": 2} and only_train["boxes"] == 2


def test_verify_reports_undecodable_images(tmp_path):
    root = _cub(tmp_path)
    path = root / "images" / "001.a" / "2.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    plain = json.loads(runner.invoke(app, ["data", "summary", str(root), "-f", "cub", "--json"]).stdout)
    assert plain["images"] == {"train": 2, "test": 1} and len(plain["problems"]) == 2
    result = runner.invoke(app, ["data", "summary", str(root), "-f", "cub", "--json", "--verify", "--workers", "2"])
    assert result.exit_code == 0, result.output
    verified = json.loads(result.stdout)
    assert verified["images"] == {"train": 1, "test": 1}
    assert verified["problems"][-1]["path"] == str(path) and "unreadable" in verified["problems"][-1]["problem"]


def test_not_that_format_exits_2_naming_the_missing_file(tmp_path):
    root = _cub(tmp_path)
    (root / "train_test_split.txt").unlink()
    result = runner.invoke(app, ["data", "summary", str(root), "--format", "cub", "--json"])
    assert result.exit_code == 2
    assert "train_test_split.txt" in result.stderr and result.stdout == ""
    result = runner.invoke(app, ["data", "summary", str(root), "--format", "csv"])
    assert result.exit_code == 2 and "labels.csv" in result.stderr
    result = runner.invoke(app, ["data", "summary", str(tmp_path / "absent"), "--format", "csv"])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_imagefolder_json_counts_images_boxes_and_skipped_files(tmp_path):
    for name, size in {"cat/a.png": (30, 20), "cat/sub/b.png": (10, 10), "dog/c.jpg": (8, 8)}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(tmp_path / name)
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"")
    (tmp_path / "dog" / "notes.txt").write_text("skipped")
    (tmp_path / "boxes.csv").write_text("image,x0,y0,x1,y1\ncat/a.png,1,2,10,12\ncat/a.png,0,0,5,5\nnope.png,0,0,1,1\n")
    result = runner.invoke(app, ["data", "summary", str(tmp_path), "--format", "imagefolder", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "imagefolder" and summary["images"] == {"train": 3}
    assert summary["classes"] == 2 and summary["boxes"] == 2 and summary["images_with_masks"] == 0
    assert summary["problems"] == [
        {"problem": "hidden file; skipped", "path": str(tmp_path / "cat" / ".DS_Store")},
        {"problem": "not an image file (extension .txt); skipped", "path": str(tmp_path / "dog" / "notes.txt")},
        {
            "problem": "image nope.png is not an image of the folder (root/<class>/<image>); its box is ignored",
            "line": f"{tmp_path / 'boxes.csv'}:4",
        },
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["data", "summary", str(empty), "--format", "imagefolder"])
    assert result.exit_code == 2 and "root/<class>/<image>" in result.stderr


def test_help_explains_options():
    result = runner.invoke(app, ["data", "summary", "--help"])
    assert result.exit_code == 0
    for option in ("--format", "--split", "--verify", "--json", "--workers"):
        assert option in result.stdout
