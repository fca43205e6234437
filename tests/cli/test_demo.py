"""`spol demo --quick`: the smoke test of what `make demo` runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos
from typer.testing import CliRunner

from spol.cli._app import app
from spol.data import load_image_rgb, read_dataset
from spol.data.transforms import EvalInputs
from spol.evaluation import scoremap_to_boxes
from spol.localization import Localizer
from spol.models import Predictor
from spol.pipeline.scoring import ScoreMapSystem


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The folder of one `spol demo --quick` run and what it printed."""
    out = tmp_path_factory.mktemp("quick") / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_quick_demo_writes_metrics_and_report_and_prints_the_comparison(quick_demo: tuple[Path, str]) -> None:
    out, output = quick_demo
    assert "GT-known Loc" in output and str(out / "report.html") in output
    assert output.startswith("smoke test:") and "numbers mean nothing" in output
    assert "Smoke test" in (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"spol", "mffcam", "cam"}
    assert metrics["spol"]["pxap"] is not None  # the synthetic data has masks
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "localizer.json").is_file()

    # `spol localize --method spol` draws, on each test image, the box the evaluation scored at the chosen
    # threshold (with no "no object" cut, which the protocol does not have).
    localizer = Localizer.from_run(out, method="spol", min_score=0.0, device="cpu")
    test = [r for r in read_dataset(out / "data", "cub").records if r.split == "test"]
    evaluation = ScoreMapSystem(Predictor(localizer.map_network, "seg", input_size=localizer.input_size)).eval()
    to_input = EvalInputs([localizer.input_size])
    images = torch.stack([to_input(load_image_rgb(r.path))[0] for r in test])
    labels = torch.zeros(len(test), dtype=torch.int64)
    with torch.inference_mode():
        maps, _ = evaluation.predict_step((torch.arange(len(test)), labels, [images]), 0)
    found = localizer.localize_batch([r.path for r in test], batch_size=len(test))
    threshold = metrics["spol"]["threshold"]
    assert localizer.threshold == threshold
    for scoremap, result in zip(maps.numpy(), found, strict=True):
        (scored,) = scoremap_to_boxes(scoremap, [threshold])[0].tolist()
        assert list(result.protocol_box or (0, 0, 0, 0)) == scored


README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_example() -> str:
    """The README's lines that turn the exported file's outputs into a mask, a box and a class."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- exported-localizer-example.*?-->\n```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "README.md lost its exported-localizer example"
    return match.group(1)


@pytest.mark.slow
def test_exported_onnx_file_run_by_onnxruntime_gives_spol_localize_results(
    quick_demo: tuple[Path, str], tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    run, _ = quick_demo
    onnx_file = tmp_path / "localizer.onnx"
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--format", "onnx", "--out", str(onnx_file)])
    assert result.exit_code == 0, result.output

    # Images the networks have not seen: photographs of other sizes and shapes, and a fresh synthetic image.
    images = {"cat.png": photos.chelsea(), "rocket.png": photos.rocket(), "coffee.png": photos.coffee()[:120, :300]}
    images["test.png"] = np.asarray(Image.open(sorted((run / "data" / "images").rglob("*.jpg"))[-1]).convert("RGB"))
    localizer = Localizer.from_run(run, device="cpu")
    example = _readme_example()
    for name, pixels in images.items():
        Image.fromarray(pixels).save(tmp_path / name)
        found = localizer(tmp_path / name)
        code = (
            example.replace("runs/cub/localizer.json", str(run / "localizer.json"))
            .replace('"localizer.onnx"', repr(str(onnx_file)))
            .replace('"bird.jpg"', repr(str(tmp_path / name)))
        )
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own lines
        assert np.abs(namespace["scoremap"] - found.scoremap).max() < 1e-3, name
        assert namespace["box"] == found.box, name
        # The maps agree to float precision (ONNX Runtime's kernels are not torch's), so a pixel
        # lying on the threshold may fall on either side: the masks agree on all but a few.
        assert np.mean(namespace["mask"] != found.mask) < 1e-3, name
        assert namespace["label"] == found.class_name, name


def test_demo_refuses_a_data_folder_it_did_not_make(tmp_path):
    (tmp_path / "demo" / "data").mkdir(parents=True)
    (tmp_path / "demo" / "data" / "precious.txt").write_text("user data")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert "not a spol run folder" in result.output and "choose an empty or new output folder" in result.output
    assert "--overwrite-foreign" not in result.output  # an option of `spol pipeline`, not of `spol demo`
    assert (tmp_path / "demo" / "data" / "precious.txt").read_text() == "user data"


def test_pipeline_help_explains_the_options():
    result = CliRunner().invoke(app, ["pipeline", "--help"])
    assert result.exit_code == 0
    for option in ("--recipe", "--data", "--format", "--out", "--set", "--force"):
        assert option in result.output
