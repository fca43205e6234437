"""`spol localize` on a folder of images in every mode, plus a broken file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from spol.cli import app
from spol.localization import write_localizer_config
from spol.models import build_classifier, build_mffnet_seg, export_model

CLASS_NAMES = ["cat", "dog", "bird"]
EXPECTED_KEYS = {"image", "width", "height", "class", "score", "top5", "localization_score", "box", "bbox", "mask"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    run = tmp_path_factory.mktemp("run")
    export_model(
        build_mffnet_seg(backbone="efficientnet_lite0", weights=None),
        builder="mffnet_seg",
        kwargs={"backbone": "efficientnet_lite0"},
        path=run / "seg.pt",
    )
    kwargs = {"backbone": "efficientnet_lite0", "num_classes": len(CLASS_NAMES)}
    export_model(build_classifier(**kwargs, weights=None), builder="classifier", kwargs=kwargs, path=run / "cls.pt")
    write_localizer_config(
        run, class_names=CLASS_NAMES, classifier="cls.pt", segmenter="seg.pt", threshold=0.5, input_size=64
    )
    return run


def _make_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Images in many modes; returns name -> (width, height) after EXIF orientation."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    (folder / "nested").mkdir()
    rgb = rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)
    Image.fromarray(rng.integers(0, 256, size=(20, 30, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 256, size=(25, 35), dtype=np.uint8), mode="L").save(folder / "gray.png")
    sixteen = Image.fromarray(rng.integers(0, 65536, size=(22, 33), dtype=np.uint16))
    assert sixteen.mode.startswith("I;16")
    sixteen.save(folder / "sixteen.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(folder / "nested" / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif)
    (folder / "broken.jpg").write_text("this is not a JPEG\n")
    return {
        "rgba.png": (30, 20),
        "gray.png": (35, 25),
        "sixteen.png": (33, 22),
        "cmyk.jpg": (40, 24),
        "palette.png": (40, 24),
        "rotated.jpg": (24, 40),  # stored 40 x 24, displayed 24 x 40
    }


def test_folder_of_mixed_modes_and_a_broken_file(run_dir: Path, tmp_path: Path) -> None:
    sizes = _make_images(tmp_path / "images")
    out = tmp_path / "out"
    images = str(tmp_path / "images")
    args = ["localize", images, "--run", str(run_dir), "--out", str(out), "--json", "--batch-size", "4"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output  # a file of a folder that is not an image is skipped, counted
    assert "broken.jpg" in result.stderr and "skipped 1 file(s) that are not images" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["image"]).name for r in records) == sorted(sizes)
    # Walk order: the folder's files sorted, then its sub-folders.
    assert [Path(r["image"]).name for r in records][-1] == "palette.png"
    for record in records:
        assert EXPECTED_KEYS <= set(record)
        name = Path(record["image"]).name
        assert Path(record["image"]).exists()
        width, height = sizes[name]
        assert (record["width"], record["height"]) == (width, height), name
        assert record["class"] in CLASS_NAMES and record["top5"][0] == [record["class"], record["score"]]
        assert len(record["top5"]) == len(CLASS_NAMES)
        with Image.open(record["mask"]) as mask_image:
            mask = np.asarray(mask_image)
        assert mask.shape == (height, width) and set(np.unique(mask)) <= {0, 255}
        if record["box"] is not None:
            x0, y0, x1, y1 = record["box"]
            assert 0 <= x0 <= x1 <= width - 1 and 0 <= y0 <= y1 <= height - 1
        with Image.open(record["overlay"]) as overlay:
            assert overlay.size == (width, height)
    written = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert written == records

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()] == records


def test_single_file_without_json_and_path_errors(run_dir: Path, tmp_path: Path) -> None:
    image = tmp_path / "one.png"
    Image.fromarray(np.zeros((16, 20, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["localize", str(image), "--run", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "one.png" in result.stdout and (out / "one_mask.png").exists() and (out / "one_overlay.png").exists()

    missing = CliRunner().invoke(app, ["localize", str(tmp_path / "nope.png"), "--run", str(run_dir)])
    assert missing.exit_code == 2 and "nope.png" in missing.stderr
    no_run = CliRunner().invoke(app, ["localize", str(image), "--run", str(tmp_path)])
    assert no_run.exit_code == 2 and "localizer.json" in no_run.stderr


def test_without_a_run_the_built_in_imagenet_model_localizes_a_photograph(tmp_path: Path) -> None:
    from skimage import data

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((60, 80, 3), dtype=np.uint8)).save(blank)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["localize", str(photo), str(blank), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "built-in ImageNet model" in result.stderr and "EfficientNet-Lite0" in result.stderr
    cat, nothing = result.stdout.splitlines()
    assert cat.startswith(f"{photo}: Egyptian cat") and "box " in cat
    assert nothing.startswith(f"{blank}:") and "no object" in nothing
    method = CliRunner().invoke(app, ["localize", str(photo), "--method", "cam", "--out", str(tmp_path / "o2")])
    assert method.exit_code == 2 and "--run" in method.stderr


def test_method_picks_another_of_the_runs_methods(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    kwargs = {"backbone": "efficientnet_lite0", "num_classes": len(CLASS_NAMES)}
    from spol.models import build_mffnet_cam

    export_model(build_mffnet_cam(**kwargs, weights=None), builder="mffnet_cam", kwargs=kwargs, path=run / "cam.pt")
    seg = {"model": run_dir / "seg.pt", "kind": "seg", "threshold": 0.5, "threshold_rule": "absolute"}
    cam = {"model": "cam.pt", "kind": "cam", "threshold": 0.3, "threshold_rule": "protocol", "validated": True}
    write_localizer_config(
        run,
        class_names=CLASS_NAMES,
        classifier="cam.pt",
        method="mffcam",
        methods={"spol": seg, "mffcam": cam},
        input_size=64,
    )
    image = tmp_path / "one.png"
    Image.fromarray(np.full((16, 20, 3), 90, dtype=np.uint8)).save(image)
    chosen = CliRunner().invoke(app, ["localize", str(image), "--run", str(run), "--out", str(tmp_path / "a")])
    assert (
        chosen.exit_code == 0 and "localizing with MFF-CAM, protocol threshold 0.3 chosen on boxed val" in chosen.stderr
    )
    other = CliRunner().invoke(
        app, ["localize", str(image), "--run", str(run), "--method", "spol", "--out", str(tmp_path / "b")]
    )
    assert other.exit_code == 0 and "localizing with SPOL, absolute threshold 0.5" in other.stderr
    unknown = CliRunner().invoke(
        app, ["localize", str(image), "--run", str(run), "--method", "cam", "--out", str(tmp_path / "c")]
    )
    assert unknown.exit_code == 2 and "choose one of spol, mffcam" in unknown.stderr


def test_outputs_into_a_run_folder_its_input_folder_or_a_dangling_link_are_one_line_errors(
    run_dir: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((16, 20, 3), dtype=np.uint8)).save(images / "one.png")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    base = ["localize", str(images), "--run", str(run_dir)]
    for out, message in (
        (run_dir, f"is the spol run folder {run_dir}"),
        (run_dir / "sub", f"lies in the spol run folder {run_dir}"),
        (images, "is the output folder"),
        (link, "is a symbolic link to"),
    ):
        result = CliRunner().invoke(app, [*base, "--out", str(out), "--force"])
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(result.stderr.splitlines()) == 1 and "no files" not in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["cls.pt", "localizer.json", "seg.pt"]


def test_hidden_and_non_image_files_are_counted_and_only_a_named_one_fails_the_run(
    run_dir: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    (images / ".git").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 20, 3), dtype=np.uint8)).save(images / "one.png")
    Image.fromarray(np.zeros((16, 20, 3), dtype=np.uint8)).save(images / ".git" / "hidden.png")
    (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (images / "notes.txt").write_text("not an image\n")
    base = ["localize", str(images), "--run", str(run_dir), "--json"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert [Path(json.loads(line)["image"]).name for line in result.stdout.splitlines()] == ["one.png"]
    assert "skipped 1 file(s) that are not images and left out 2 hidden file(s)" in result.stderr
    named = CliRunner().invoke(app, [*base, str(images / "notes.txt"), "--out", str(tmp_path / "b")])
    assert named.exit_code == 1 and "(1 named on the command line)" in named.stderr, named.output


def test_each_run_gets_a_new_numbered_folder_and_force_replaces_only_what_localize_wrote(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((16, 20, 3), 90, dtype=np.uint8)).save(images / name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for _ in range(2):
        assert CliRunner().invoke(app, ["localize", str(images), "--run", str(run_dir)]).exit_code == 0
    assert sorted(p.name for p in work.iterdir()) == ["localize", "localize2"]
    assert (work / "localize2" / "b_overlay.png").is_file()
    # --force into the first folder with one image: b's outputs go, a file of the user's stays.
    (work / "localize" / "notes.txt").write_text("mine\n")
    forced = CliRunner().invoke(
        app, ["localize", str(images / "a.png"), "--run", str(run_dir), "--out", "localize", "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in (work / "localize").iterdir()) == [
        "a_mask.png",
        "a_overlay.png",
        "notes.txt",
        "predictions.jsonl",
    ]
    # A walk of the working folder leaves the earlier outputs out.
    Image.fromarray(np.full((16, 20, 3), 90, dtype=np.uint8)).save(work / "c.png")
    again = CliRunner().invoke(app, ["localize", str(work), "--run", str(run_dir), "--json"])
    assert again.exit_code == 0 and "localize3" in again.stderr, again.output
    assert [Path(json.loads(line)["image"]).name for line in again.stdout.splitlines()] == ["c.png"]


LOCALIZE_SCRIPT = """
import sys
from spol.cli import app
sys.argv = ["spol", "localize", sys.argv[1], "--run", sys.argv[2], "--out", sys.argv[3], "--batch-size", "1"]
app()
"""


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_a_second_localize_into_the_same_folder_is_refused_and_a_killed_one_resumes(
    run_dir: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for number in range(40):
        Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)).save(images / f"{number:02d}.png")
    out = tmp_path / "out"
    journal = out / "predictions.jsonl.partial"
    command = [sys.executable, "-c", LOCALIZE_SCRIPT, str(images), str(run_dir), str(out)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _lines(journal) < 4 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = CliRunner().invoke(app, ["localize", str(images), "--run", str(run_dir), "--out", str(out)])
        assert second.exit_code == 2 and "is in use by another spol process" in second.stderr, second.output
        first.send_signal(signal.SIGKILL)  # killed midway: its lock and journal stay behind
    finally:
        first.kill()
        first.wait()
    done_before = _lines(journal) - 1
    assert 3 <= done_before < 40 and (out / ".spol.lock").is_file() and not (out / "predictions.jsonl").exists()
    rerun = CliRunner().invoke(app, ["localize", str(images), "--run", str(run_dir), "--out", str(out), "--json"])
    assert rerun.exit_code == 0, rerun.output
    assert f"{done_before} of them by the run that was interrupted" in rerun.stderr
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [Path(r["image"]).name for r in records] == sorted(p.name for p in images.iterdir())
    assert [json.loads(line) for line in rerun.stdout.splitlines()] == records
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".png")) == ["predictions.jsonl"]
