"""`spol demo --quick`: the smoke test of what `make demo` runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spol.cli._app import app


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
