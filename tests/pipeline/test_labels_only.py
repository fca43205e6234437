"""The user WSOL is for: a folder of labelled photos (imagefolder), first with no box at all, then a few."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny import TINY_PIPELINE
from typer.testing import CliRunner

import spol
from spol.cli import app
from spol.config import load_recipe
from spol.data import SyntheticConfig, generate_synthetic, read_dataset
from spol.pipeline import prepare_dataset, run_pipeline

BOXED_PER_CLASS = 4


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple]]:
    """An imagefolder (root/<class>/<image>, no boxes.csv) and the boxes its generator drew, by image id."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("labelled")
    cub = generate_synthetic(
        root / "cub",
        SyntheticConfig(num_classes=3, train_per_class=10, test_per_class=0, image_size=(64, 64), seed=5),
        progress=False,
        workers=1,
    )
    shutil.copytree(cub / "images", root / "photos")
    boxes = {record.image_id: record.boxes for record in read_dataset(cub, "cub").records}
    return root / "photos", boxes


def test_no_box_at_all_trains_everything_and_writes_a_localizer_without_metrics(photos, tmp_path: Path) -> None:
    root, _ = photos
    run = tmp_path / "run"
    overrides = [arg for item in TINY_PIPELINE for arg in ("--set", item)]
    result = CliRunner().invoke(
        app, ["pipeline", "--data", str(root), "--format", "imagefolder", "--out", str(run), *overrides]
    )
    assert result.exit_code == 0, result.output
    assert "no localization metrics" in result.output and "localizes with: SPOL" in result.output
    for stage in ("cam", "baseline_cam", "seg"):
        assert (run / stage / "model.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"spol", "mffcam", "cam"}
    for entry in metrics.values():
        assert "max_box_acc_v2" not in entry and "gt_known_loc" not in entry  # absent, not zero
        assert entry["threshold_from"] == "fixed rule (no boxed val image)"
    assert (metrics["spol"]["threshold"], metrics["spol"]["threshold_rule"]) == (0.2, "absolute")
    config = json.loads((run / "localizer.json").read_text())
    assert config["method"] == "spol" and not any(entry["validated"] for entry in config["methods"].values())
    selection = json.loads((run / "selection.json").read_text())
    assert selection["method_from"] == "default: no boxed val image" and selection["bootstrap"] is None
    html = (run / "report.html").read_text()
    assert "No localization metrics" in html and "draw boxes for a few images per class" in html
    assert "data:image/png;base64," in html and "Pseudo masks (" in html  # samples, pseudo masks, curves
    assert "training images: no box, so no ground truth shown" in html
    localizer = spol.Localizer.from_run(run)
    assert localizer.method == "spol" and not localizer.validated and "not validated" in localizer.description
    found = localizer(next(root.rglob("*.jpg")))
    assert found.class_name in read_dataset(root, "imagefolder").class_names


def test_a_few_boxes_per_class_choose_on_val_and_measure_on_test_only(photos, tmp_path: Path) -> None:
    source, boxes = photos
    root = tmp_path / "photos"
    shutil.copytree(source, root)
    rows = ["image,x0,y0,x1,y1"]
    boxed = []
    for class_dir in sorted(root.iterdir()):
        for image in sorted(class_dir.glob("*.jpg"))[:BOXED_PER_CLASS]:
            image_id = image.relative_to(root).as_posix()
            boxed.append(image_id)
            rows += [f"{image_id},{x0:g},{y0:g},{x1:g},{y1:g}" for x0, y0, x1, y1 in boxes[image_id]]
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    recipe = load_recipe("cpu", TINY_PIPELINE)
    dataset, notes = prepare_dataset(root, "imagefolder", recipe)
    val, test = dataset.split("val"), dataset.split("test")
    # round(0.25 x 10) = 3 wanted per class and split, 4 boxes: 2 + 2, every boxed image evaluated, none trained on.
    assert len(val) == len(test) == 6 and {r.image_id for r in val + test} == set(boxed)
    assert not any(r.boxes for r in dataset.split("train"))
    assert "val: 6 boxed images, boxed train images" in notes[0]

    result = run_pipeline(recipe, root, "imagefolder", tmp_path / "run", report_samples=2, progress=False)
    assert result.evaluated and result.metrics["spol"]["threshold_from"] == "val"
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert selection["val_images"] == 6 and selection["bootstrap"]["images"] == 6
    assert selection["method"] == result.method
    assert any("bootstrap interval" in note and "6 boxed images" in note for note in result.notes)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "6 val and 6 test images; training uses the class labels only" in html


def test_select_without_boxed_val_images_is_refused_before_a_run_folder_is_made(photos, tmp_path: Path) -> None:
    root, _ = photos
    with pytest.raises(ValueError, match="--select chooses training settings on boxed val images"):
        recipe = load_recipe("cpu", TINY_PIPELINE)
        run_pipeline(recipe, root, "imagefolder", tmp_path / "run", select=["cam.lr=0.01,0.02"])
    assert not (tmp_path / "run").exists()
