"""`spol evaluate-maps` on a tiny metadata folder: JSON keys and values, table, masks, predictions, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from spol.cli import app

runner = CliRunner()


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    """Two 448 x 448 images: a's map hits its box exactly, b's map is empty."""
    meta = tmp_path / "metadata" / "test"
    meta.mkdir(parents=True)
    (meta / "image_ids.txt").write_text("001.a/a.jpg\n002.b/b.jpg\n")
    (meta / "class_labels.txt").write_text("001.a/a.jpg,0\n002.b/b.jpg,1\n")
    (meta / "image_sizes.txt").write_text("001.a/a.jpg,448,448\n002.b/b.jpg,448,448\n")
    (meta / "localization.txt").write_text("001.a/a.jpg,80,80,160,160\n002.b/b.jpg,200,200,300,300\n")
    maps = tmp_path / "maps"
    (maps / "001.a").mkdir(parents=True)
    (maps / "002.b").mkdir()
    hit = np.zeros((224, 224), np.float32)
    hit[40:80, 40:80] = 1.0  # contour box (40, 40, 80, 80) = the rescaled gt
    np.save(maps / "001.a" / "a.jpg.npy", hit)
    np.save(maps / "002.b" / "b.jpg.npy", np.zeros((112, 112), np.float32))  # resized
    return meta, maps


def test_json_output_keys_and_values(tmp_path):
    meta, maps = _setup(tmp_path)
    result = runner.invoke(app, ["evaluate-maps", "--metadata", str(meta), "--scoremaps", str(maps), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == {"num_images", "max_box_acc", "max_box_acc_mean", "best_cam_threshold"}
    assert summary["num_images"] == 2
    assert "1 map(s) were not 224x224" in result.stderr
    assert summary["max_box_acc"] == {"30": 50.0, "50": 50.0, "70": 50.0}
    assert summary["best_cam_threshold"] == {"30": 0.0, "50": 0.0, "70": 0.0}


def test_predictions_add_loc_numbers_and_table_output(tmp_path):
    meta, maps = _setup(tmp_path)
    predictions = tmp_path / "p.csv"
    predictions.write_text("001.a/a.jpg,1,0,2,3,4\n002.b/b.jpg,1,0,2,3,4\n")
    args = ["evaluate-maps", "--metadata", str(meta), "--scoremaps", str(maps), "--predictions", str(predictions)]
    summary = json.loads(runner.invoke(app, [*args, "--json", "--iou-thresholds", "50"]).stdout)
    # a: box right, class 0 second -> top-5 only; b: box wrong
    assert summary["top1_loc"] == 0.0 and summary["top5_loc"] == 50.0 and summary["gt_known_loc"] == 50.0
    assert summary["max_box_acc"] == {"50": 50.0}
    spaced = json.loads(runner.invoke(app, [*args, "--json", "--iou-thresholds", "30", "50", "70"]).stdout)
    assert list(spaced["max_box_acc"]) == ["30", "50", "70"]
    table = runner.invoke(app, [*args, "--multi-contour"])
    assert table.exit_code == 0 and "multi-contour" in table.stdout and "Top-1 Loc" in table.stdout
    predictions.write_text("001.a/a.jpg,1,0,2,3,4\n")
    lacking = runner.invoke(app, [*args, "--json"])
    assert lacking.exit_code == 2 and "002.b/b.jpg" in lacking.stderr and lacking.stdout == ""


def test_masks_add_pxap(tmp_path):
    meta = tmp_path / "val"
    meta.mkdir()
    (meta / "image_ids.txt").write_text("val/x.jpg\n")
    (meta / "class_labels.txt").write_text("val/x.jpg,0\n")
    (meta / "localization.txt").write_text("val/x.jpg,val/x_m.png,val/x_ignore.png\n")
    masks = tmp_path / "masks"
    (masks / "val").mkdir(parents=True)
    fg = np.zeros((224, 224), np.uint8)
    fg[50:100, 50:100] = 255
    cv2.imwrite(str(masks / "val" / "x_m.png"), fg)
    cv2.imwrite(str(masks / "val" / "x_ignore.png"), np.zeros((224, 224), np.uint8))
    maps = tmp_path / "maps"
    (maps / "val").mkdir(parents=True)
    np.save(maps / "val" / "x.jpg.npy", fg.astype(np.float64) / 255)
    result = runner.invoke(
        app, ["evaluate-maps", "--metadata", str(meta), "--scoremaps", str(maps), "--masks", str(masks), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pxap"] == 100.0 and summary["max_box_acc"] is None


def test_bad_map_exits_2_naming_the_image(tmp_path):
    meta, maps = _setup(tmp_path)
    np.save(maps / "002.b" / "b.jpg.npy", np.full((224, 224), np.nan))
    result = runner.invoke(app, ["evaluate-maps", "--metadata", str(meta), "--scoremaps", str(maps), "--json"])
    assert result.exit_code == 2 and "002.b/b.jpg" in result.stderr and "NaN" in result.stderr
    assert result.stdout == ""
    (maps / "002.b" / "b.jpg.npy").unlink()
    missing = runner.invoke(app, ["evaluate-maps", "--metadata", str(meta), "--scoremaps", str(maps)])
    assert missing.exit_code == 2 and "002.b/b.jpg" in missing.stderr


def test_bad_arguments_and_metadata_exit_2(tmp_path):
    meta, maps = _setup(tmp_path)
    base = ["evaluate-maps", "--scoremaps", str(maps)]
    assert runner.invoke(app, [*base, "--metadata", str(tmp_path / "none")]).exit_code == 2
    assert runner.invoke(app, [*base, "--metadata", str(tmp_path)]).exit_code == 2  # not a split folder
    assert runner.invoke(app, [*base, "--metadata", str(meta), "--iou-thresholds", "fifty"]).exit_code == 2
    assert runner.invoke(app, [*base, "--metadata", str(meta), "stray"]).exit_code == 2
    with_p = runner.invoke(app, [*base, "--metadata", str(meta), "--iou-thresholds", "30", "--predictions", str(meta)])
    assert with_p.exit_code == 2 and "IoU level 50" in with_p.stderr
    (meta / "localization.txt").write_text("001.a/a.jpg,80,80,160\n002.b/b.jpg,200,200,300,300\n")
    bad = runner.invoke(app, [*base, "--metadata", str(meta)])
    assert bad.exit_code == 2 and "localization.txt:1" in bad.stderr
