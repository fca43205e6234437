"""What a user sees when something is wrong: one line, the path and the fix, exit 2; a traceback only when asked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

import spol
import spol.cli
from spol.cli._app import app

runner = CliRunner()


def test_version_is_printed():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"spol {spol.__version__}"


def test_python_dash_m_spol_is_the_spol_command_with_its_one_line_errors(tmp_path):
    """`python -m spol` works where the console script is not on the PATH (the GPU check runs it so)."""
    missing = tmp_path / "no-such-run"
    result = subprocess.run(
        [sys.executable, "-m", "spol", "localize", str(tmp_path), "--run", str(missing)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: --run {missing} is not a folder; pass a run folder holding localizer.json"


def test_localize_refuses_a_missing_input_or_run_folder_before_it_imports_torch(tmp_path):
    # A typo costs a fraction of a second, not the seconds torch, torchvision and the networks take to import.
    code = (
        "import sys\nfrom spol.cli import main\nsys.argv[0] = 'spol'\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules)"
    )
    image = tmp_path / "photo.png"
    image.write_bytes(b"not looked at")
    for args in (["localize", str(tmp_path / "missing.jpg")], ["localize", str(image), "--run", str(tmp_path)]):
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_a_wrong_format_or_missing_folder_is_one_line_and_creates_nothing(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["pipeline", "--recipe", "cpu", "--data", str(tmp_path), "--format", "coco", "--out", str(out)]
    )
    assert result.exit_code == 2 and "--format must be one of cub, wsol, imagenet, csv" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    result = runner.invoke(
        app, ["pipeline", "--recipe", "cpu", "--data", str(tmp_path / "no"), "--format", "cub", "--out", str(out)]
    )
    assert result.exit_code == 2 and "no such dataset folder" in result.stderr and not out.exists()
    result = runner.invoke(app, ["localize", str(tmp_path), "--run", str(tmp_path)])
    assert result.exit_code == 2 and "localizer.json does not exist" in result.stderr


def test_an_unforeseen_error_is_one_line_unless_debugging(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr("spol.cli.data.read_dataset", broken)
    monkeypatch.setattr(sys, "argv", ["spol", "data", "summary", str(tmp_path), "--format", "cub"])
    monkeypatch.delenv("SPOL_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stopped:
        spol.cli.main()
    assert stopped.value.code == 1
    message = capsys.readouterr().err
    assert "RuntimeError: something nobody planned for" in message and "--debug" in message
    assert "Traceback" not in message and len(message.strip().splitlines()) == 1
    monkeypatch.setenv("SPOL_DEBUG", "1")
    with pytest.raises(RuntimeError, match="nobody planned"):
        spol.cli.main()


def test_a_model_file_of_another_kind_is_named_with_the_fix(tmp_path):
    from spol.localization import write_localizer_config
    from spol.models import build_mffnet_cam, export_model

    kwargs = {"backbone": "efficientnet_lite0", "num_classes": 2}
    cam = build_mffnet_cam(**kwargs, weights=None)
    run = tmp_path / "run"
    export_model(cam, builder="mffnet_cam", kwargs=kwargs, path=run / "cam.pt")
    write_localizer_config(run, class_names=["a", "b"], classifier="cam.pt", segmenter="cam.pt", threshold=0.5)
    args = ["localize", str(run / "cam.pt"), "--run", str(run), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "holds a CAM network (MFF-Net), not a segmentation network" in result.stderr
    assert str(run / "cam.pt") in result.stderr and len(result.stderr.strip().splitlines()) == 1
