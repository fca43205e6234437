"""`spol demo --quick`: the smoke test of what `make demo` runs."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from spol.cli._app import app
from spol.data import load_image_rgb, read_dataset
from spol.data.transforms import eval_transform
from spol.evaluation import scoremap_to_boxes
from spol.localization import Localizer
from spol.models import load_exported_model
from spol.pipeline.inference import scoremaps_of


@pytest.mark.slow
def test_quick_demo_writes_metrics_and_report_and_prints_the_comparison(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "GT-known Loc" in result.output and str(out / "report.html") in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"spol", "mffcam", "cam"}
    assert metrics["spol"]["pxap"] is not None  # the synthetic data has masks
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "localizer.json").is_file()

    # `spol localize` draws, on each test image, the box the evaluation scored at the chosen threshold.
    localizer = Localizer.from_run(out, device="cpu")
    test = [r for r in read_dataset(out / "data", "cub").records if r.split == "test"]
    segmenter = load_exported_model(out / json.loads((out / "localizer.json").read_text())["segmenter"])
    transform = eval_transform(resize=localizer.input_size, normalization=segmenter.normalization)
    images = torch.stack([transform(load_image_rgb(r.path)) for r in test])
    with torch.inference_mode():
        maps, _ = scoremaps_of(segmenter.eval(), "seg", images, torch.zeros(len(test), dtype=torch.int64))
    found = localizer.localize_batch([r.path for r in test], batch_size=len(test))
    threshold = metrics["spol"]["threshold"]
    assert localizer.threshold == threshold
    for scoremap, result in zip(maps.numpy(), found, strict=True):
        (scored,) = scoremap_to_boxes(scoremap, [threshold])[0].tolist()
        assert list(result.protocol_box or (0, 0, 0, 0)) == scored


def test_demo_refuses_a_data_folder_it_did_not_make(tmp_path):
    (tmp_path / "demo" / "data").mkdir(parents=True)
    (tmp_path / "demo" / "data" / "precious.txt").write_text("user data")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert "not a spol run folder" in result.output and "--overwrite-foreign" in result.output
    assert (tmp_path / "demo" / "data" / "precious.txt").read_text() == "user data"


def test_pipeline_help_explains_the_options():
    result = CliRunner().invoke(app, ["pipeline", "--help"])
    assert result.exit_code == 0
    for option in ("--recipe", "--data", "--format", "--out", "--set", "--force"):
        assert option in result.output
