import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tiny import TORCH_THREADS
from typer.testing import CliRunner

from spol.cli._app import app
from spol.models import build_mffnet_cam, export_model
from spol.stages.pseudo_masks import REPORT_NAME, pseudo_mask_path, read_pseudo_mask

runner = CliRunner()

# (relative path, class id, train?, (width, height))
IMAGES = [
    ("001.A/a1.jpg", 1, 1, (50, 40)),
    ("001.A/a2.jpg", 1, 0, (40, 40)),
    ("002.B/b1.jpg", 2, 1, (33, 61)),
]


def _write_cub(root: Path) -> None:
    rng = np.random.default_rng(0)
    root.mkdir()
    (root / "classes.txt").write_text("1 001.A\n2 002.B\n")
    lines = {"images.txt": [], "image_class_labels.txt": [], "bounding_boxes.txt": [], "train_test_split.txt": []}
    for number, (relative, class_id, train, (width, height)) in enumerate(IMAGES, start=1):
        path = root / "images" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, format="JPEG")
        lines["images.txt"].append(f"{number} {relative}")
        lines["image_class_labels.txt"].append(f"{number} {class_id}")
        lines["bounding_boxes.txt"].append(f"{number} 2.0 3.0 20.0 20.0")
        lines["train_test_split.txt"].append(f"{number} {train}")
    for name, content in lines.items():
        (root / name).write_text("\n".join(content) + "\n")


def _export_cam(run: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"backbone": "efficientnet_lite0", "num_classes": 2}
    export_model(build_mffnet_cam(**kwargs, weights=None), builder="mffnet_cam", kwargs=kwargs, path=run / "model.pt")


def test_help_explains_every_option():
    result = runner.invoke(app, ["pseudo-masks", "--help"])
    assert result.exit_code == 0
    for option in ("--cam", "--data", "--format", "--out", "--batch-size", "--device", "--force"):
        assert option in result.output


def test_missing_model_is_an_error_naming_the_path(tmp_path):
    args = ["--cam", str(tmp_path / "run"), "--data", str(tmp_path), "--format", "cub", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, ["pseudo-masks", *args])
    assert result.exit_code == 2
    assert "model.pt" in result.output
    assert not (tmp_path / "o").exists()


def test_writes_train_masks_from_a_run_folder_and_resumes(tmp_path):
    torch.set_num_threads(TORCH_THREADS)
    data, run, out = tmp_path / "cub", tmp_path / "run", tmp_path / "masks"
    _write_cub(data)
    run.mkdir()
    _export_cam(run)
    args = ["pseudo-masks", "--cam", str(run), "--data", str(data), "--format", "cub", "--out", str(out)]
    args += ["--batch-size", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[0])
    assert (summary["written"], summary["skipped_existing"], summary["failed"]) == (2, 0, 0)
    for relative, _, train, (width, height) in IMAGES:
        path = pseudo_mask_path(out, relative)
        assert path.exists() == bool(train)  # the test image gets no pseudo mask
        if train:
            p, _ = read_pseudo_mask(path)
            assert p.shape == (height, width)
    assert json.loads((out / REPORT_NAME).read_text())["written"] == 2

    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert json.loads(again.stdout.strip().splitlines()[0])["skipped_existing"] == 2
    forced = runner.invoke(app, [*args, "--force"])
    assert json.loads(forced.stdout.strip().splitlines()[0])["written"] == 2
