"""`spol export`: the localizer as one TorchScript file, and the command's refusals.

The ONNX file of a trained run, run with onnxruntime through the README's lines, is checked in
tests/cli/test_demo.py (it needs the quick demo's trained networks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from typer.testing import CliRunner

from spol.cli import app
from spol.localization import Localizer
from spol.localization.export import export_localizer
from spol.models import load_exported_model


def _photos() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [
        data.chelsea(),  # 300 x 451, downscaled
        data.coffee()[:97, :300],  # wide
        rng.integers(0, 256, size=(41, 29, 3), dtype=np.uint8),  # upscaled
    ]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("method", ["spol", "mffcam"])
def test_torchscript_file_gives_the_localizers_maps_and_classes(
    method: str, localizer: Localizer, tiny_run: Path, tmp_path: Path
) -> None:
    if method == "mffcam":  # a CAM method whose network also gives the classes: its map is the top class's CAM
        cam = load_exported_model(tiny_run / "cam" / "model.pt")
        localizer = Localizer(
            cam,
            cam,
            class_names=localizer.class_names,
            threshold=0.3,
            kind="cam",
            threshold_rule="protocol",
            method="mffcam",
            input_size=localizer.input_size,
        )
    path = export_localizer(localizer, tmp_path / "localizer.pt", export_format="torchscript")
    exported = torch.jit.load(str(path))
    for image in _photos():
        found = localizer(image)
        with torch.no_grad():
            scoremap, class_scores, grid, localization_score = exported(torch.from_numpy(image))
        assert scoremap.shape == image.shape[:2] and grid.shape == (224, 224)
        assert np.abs(scoremap.numpy() - found.scoremap).max() < 1e-3
        assert int(class_scores.argmax()) == found.class_index
        assert class_scores.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert float(class_scores.max()) == pytest.approx(found.score, abs=1e-4)
        assert float(localization_score) == pytest.approx(found.localization_score, abs=1e-4)


def test_export_refuses_what_it_cannot_do(tiny_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    wrong_format = runner.invoke(app, ["export", "--run", str(tiny_run), "--format", "tflite", "--out", "x.tflite"])
    assert wrong_format.exit_code == 2 and "choose one of onnx, torchscript" in wrong_format.output
    not_a_run = runner.invoke(app, ["export", "--run", str(tmp_path), "--out", str(tmp_path / "x.onnx")])
    assert not_a_run.exit_code == 2 and "localizer.json does not exist" in not_a_run.output
    existing = tmp_path / "mine.pt"
    existing.write_bytes(b"the user's file")
    refused = runner.invoke(app, ["export", "--run", str(tiny_run), "--format", "torchscript", "--out", str(existing)])
    assert refused.exit_code == 2 and "--force" in refused.output
    assert existing.read_bytes() == b"the user's file"
    into_folder = runner.invoke(app, ["export", "--run", str(tiny_run), "--out", str(tmp_path)])
    assert into_folder.exit_code == 2 and "is a folder" in into_folder.output


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_never_writes_into_a_run_folder_and_cleans_what_a_killed_export_left(
    tiny_run: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    model = tiny_run / "seg" / "model.pt"
    before = model.read_bytes()
    for out in (model, tiny_run / "localizer.onnx"):
        args = ["export", "--run", str(tiny_run), "--format", "torchscript", "--out", str(out), "--force"]
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and f"the spol run folder {tiny_run}" in refused.stderr, refused.output
        assert "outside it" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert model.read_bytes() == before and not (tiny_run / "localizer.onnx").exists()
    out = tmp_path / "localizer.pt"
    left = [tmp_path / ".localizer.pt.abcd1234.tmp", tmp_path / ".localizer.pt.x1y2z3w4.tmp"]  # as a kill leaves them
    for path in left:
        path.write_bytes(b"partial")
    mine = tmp_path / ".notes.txt.abcd1234.tmp"
    mine.write_bytes(b"not the export's")
    done = runner.invoke(app, ["export", "--run", str(tiny_run), "--format", "torchscript", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert torch.jit.load(str(out)) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, out.name]
    link = tmp_path / "link.pt"
    link.symlink_to(tmp_path / "gone.pt")
    dangling = runner.invoke(app, ["export", "--run", str(tiny_run), "--format", "torchscript", "--out", str(link)])
    assert dangling.exit_code == 2 and "exists; pass --force" in dangling.stderr
