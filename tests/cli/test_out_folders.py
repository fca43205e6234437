"""Every command's --out: a new, empty or own folder is written; a user's folder or one inside a run is refused.

The refusals come before any training or inference, so these tests train nothing: a command that
got past them would write its folder (run.json, config.yaml, ...), which each test checks it did not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import TINY, as_cli_options
from typer.testing import CliRunner

from spol.cli._app import app
from spol.data.synthetic import SyntheticConfig, generate_synthetic
from spol.models import build_mffnet_cam, export_model
from spol.rundir import PIPELINE_OUTPUTS, claim_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dataset, a CAM network's model file, a pseudo-mask folder and a run folder for `localize --run`."""
    root = tmp_path_factory.mktemp("inputs")
    config = SyntheticConfig(num_classes=2, train_per_class=4, test_per_class=2, image_size=(48, 48))
    data = generate_synthetic(root / "data", config, force=True, progress=False, workers=1)
    torch.manual_seed(0)
    kwargs = {"backbone": "efficientnet_lite0", "num_classes": 2}
    cam = root / "cam.pt"
    export_model(build_mffnet_cam(**kwargs, weights=None), builder="mffnet_cam", kwargs=kwargs, path=cam)
    (root / "masks").mkdir()
    (root / "localizer").mkdir()
    (root / "localizer" / "localizer.json").write_text("{}")  # `localize` refuses --out before it reads the run
    return {"data": data, "cam": cam, "masks": root / "masks", "localizer": root / "localizer"}


def _command(name: str, inputs: dict[str, Path], out: Path) -> list[str]:
    data = ["--data", str(inputs["data"]), "--format", "cub"]
    return {
        "train-classifier": ["train-classifier", *data, *as_cli_options(TINY)],
        "train-cam": ["train-cam", *data, *as_cli_options(TINY)],
        "train-seg": ["train-seg", *data, "--pseudo-masks", str(inputs["masks"]), *as_cli_options(TINY)],
        "pseudo-masks": ["pseudo-masks", *data, "--cam", str(inputs["cam"]), "--device", "cpu"],
        "evaluate": ["evaluate", *data, "--segmenter", str(inputs["cam"]), "--threshold", "0.5"],
        "pipeline": ["pipeline", *data, *as_cli_options(TINY)],
        "demo": ["demo", "--quick"],
        "localize": ["localize", str(inputs["data"] / "images"), "--run", str(inputs["localizer"])],
        "data synth": ["data", "synth", "--classes", "2", "--train", "2", "--test", "1", "--size", "32"],
    }[name] + ([str(out)] if name == "data synth" else ["--out", str(out)])


def _contents(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _photos(folder: Path) -> Path:
    (folder / "holiday").mkdir(parents=True)
    for number in range(5):
        (folder / f"IMG_{number}.jpg").write_bytes(bytes([number]) * 100)
    (folder / "holiday" / "beach.jpg").write_bytes(b"beach")
    (folder / "config.yaml").write_text("a file of the user's with a name spol writes\n")
    return folder


COMMANDS = ["train-classifier", "train-cam", "train-seg", "pseudo-masks", "evaluate", "localize", "pipeline"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_of_the_users_is_refused_in_one_line_and_left_as_it_was(
    command: str, inputs: dict[str, Path], tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "photos")
    before = _contents(photos)
    result = runner.invoke(app, _command(command, inputs, photos))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{photos} holds files" in result.stderr and "IMG_0.jpg, IMG_1.jpg" in result.stderr
    assert "choose an empty or new output folder" in result.stderr
    fix = {"localize": "--force", "pipeline": "--overwrite-foreign"}.get(command)
    assert fix is None or f"pass {fix} to write beside them" in result.stderr
    assert _contents(photos) == before


@pytest.mark.parametrize("command", [*COMMANDS, "demo", "data synth"])
def test_a_folder_inside_a_run_folder_is_refused_naming_the_run(
    command: str, inputs: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"  # a pipeline run, as `spol pipeline` marks it
    claim_folder(run, PIPELINE_OUTPUTS)
    (run / "seg").mkdir()
    (run / "seg" / "model.pt").write_bytes(b"the run's network")
    before = _contents(run)
    for out in (run / "seg", run / "new"):
        result = runner.invoke(app, _command(command, inputs, out))
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1, result.stderr
        option = "OUT" if command == "data synth" else "--out"
        assert f"{option} {out} lies in the spol run folder {run}" in result.stderr, result.stderr
        assert f"choose an {option} outside it" in result.stderr
    assert _contents(run) == before


@pytest.mark.parametrize("command", ["train-seg", "evaluate", "pipeline"])
def test_another_commands_folder_is_refused(command: str, inputs: dict[str, Path], tmp_path: Path) -> None:
    from spol.rundir import stage_outputs

    cam = tmp_path / "cam"
    claim_folder(cam, stage_outputs("train-cam"))
    (cam / "model.pt").write_bytes(b"the CAM network")
    before = _contents(cam)
    result = runner.invoke(app, _command(command, inputs, cam))
    assert result.exit_code == 2, result.output
    assert f"{cam} is the run folder of `spol train-cam`" in result.stderr and "new or empty --out" in result.stderr
    assert _contents(cam) == before

