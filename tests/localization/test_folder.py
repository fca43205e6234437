"""Input walking, output naming and the no-overwrite rule of `localize_files`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spol.localization import Localizer, collect_images, localize_files
from spol.localization.folder import output_stems
from spol.rundir import FolderInUseError, RunLock


def test_folders_are_walked_sorted_and_recursively_without_the_output(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for relative in ["b.jpg", "a.png", "sub/z.txt", "sub/deeper/c.jpg", "out/old_mask.png"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")
    single = tmp_path / "single.jpg"
    single.write_bytes(b"")
    found = collect_images([single, root], exclude=root / "out")
    assert found == [single, root / "a.png", root / "b.jpg", root / "sub/z.txt", root / "sub/deeper/c.jpg"]
    with pytest.raises(FileNotFoundError, match="missing"):
        collect_images([tmp_path / "missing"])


def test_repeated_stems_get_unique_names_in_order() -> None:
    paths = [Path("a/x.jpg"), Path("b/x.jpg"), Path("x.png"), Path("c/x.jpg"), Path("y")]
    assert output_stems(paths) == ["x", "x_jpg", "x_png", "x_2", "y"]


def test_existing_outputs_stop_the_run_before_any_work(localizer: Localizer, tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((12, 14, 3), 90, dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo_overlay.png").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="--force"):
        localize_files(localizer, [image], out, progress=False)
    assert (out / "photo_overlay.png").read_bytes() == b"keep me"
    assert not (out / "predictions.jsonl").exists() and not (out / "photo_mask.png").exists()
    report = localize_files(localizer, [image], out, force=True, progress=False)
    assert report.localized == 1 and not report.skipped
    with Image.open(out / "photo_overlay.png") as overlay:
        assert overlay.size == (14, 12)


def _images(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for name in names:
        Image.fromarray(rng.integers(0, 256, size=(18, 22, 3), dtype=np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths


def _rounded(jsonl: str) -> list:
    def rounded(value):
        if isinstance(value, float):
            return round(value, 5)
        if isinstance(value, list):
            return [rounded(item) for item in value]
        return {k: rounded(v) for k, v in value.items()} if isinstance(value, dict) else value

    return [rounded(json.loads(line)) for line in jsonl.splitlines()]


def test_an_image_with_the_longest_legal_name_is_localized(localizer: Localizer, tmp_path: Path) -> None:
    long_name = "x" * 246 + ".png"  # 250 characters: legal, and 258 with "_overlay.png" in place of ".png"
    paths = _images(tmp_path / "in", [long_name, "short.png"])
    report = localize_files(localizer, paths, tmp_path / "out", progress=False)
    assert report.localized == 2 and not report.skipped
    records = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert records[0]["image"] == str(paths[0]) and records[1]["mask"] == str(tmp_path / "out" / "short_mask.png")
    for key in ("mask", "overlay"):
        assert Path(records[0][key]).is_file() and len(Path(records[0][key]).name.encode()) <= 255


def test_a_localize_interrupted_midway_is_resumed_and_gives_the_uninterrupted_outputs(
    localizer: Localizer, tmp_path: Path
) -> None:
    paths = _images(tmp_path / "in", [f"img{i}.png" for i in range(5)])
    localize_files(localizer, paths, tmp_path / "whole", batch_size=2, progress=False)
    seen: list[str] = []

    def interrupted(record: dict) -> None:
        seen.append(record["image"])
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C after the third image

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        localize_files(localizer, paths, out, batch_size=2, on_result=interrupted, progress=False)
    assert not (out / "predictions.jsonl").exists() and (out / "predictions.jsonl.partial").is_file()
    (out / ".img4_mask.png.abcd1234.tmp").write_bytes(b"partial")  # as a kill mid-write leaves it
    resumed: list[str] = []
    report = localize_files(localizer, paths, out, batch_size=2, on_result=lambda r: resumed.append(r["image"]))
    assert report.resumed == 3 and report.localized == 5
    assert resumed == [str(p) for p in paths]  # every record, in input order
    # The same records (to float noise: the resumed images went through the network in other batches).
    whole = (tmp_path / "whole" / "predictions.jsonl").read_text().replace(str(tmp_path / "whole"), str(out))
    assert _rounded((out / "predictions.jsonl").read_text()) == _rounded(whole)
    for path in (tmp_path / "whole").glob("*_mask.png"):
        assert (out / path.name).read_bytes() == path.read_bytes()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".") or "partial" in p.name) == []


def test_an_interrupted_localize_of_other_images_is_refused_until_force(localizer: Localizer, tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", ["a.png", "b.png"])
    out = tmp_path / "out"

    def stop(record: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        localize_files(localizer, paths, out, batch_size=1, on_result=stop, progress=False)
    with pytest.raises(FileExistsError, match=r"predictions.jsonl.partial holds an interrupted localize.*--force"):
        localize_files(localizer, paths[:1], out, progress=False)
    report = localize_files(localizer, paths[:1], out, force=True, progress=False)
    assert (report.localized, report.resumed) == (1, 0) and not (out / "predictions.jsonl.partial").exists()


def test_one_localize_at_a_time_writes_into_a_folder(localizer: Localizer, tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", ["a.png"])
    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out), pytest.raises(FolderInUseError, match=f"in use by another spol process .pid {os.getpid()}"):
        localize_files(localizer, paths, out, progress=False)
    assert not list(out.iterdir())  # the refused call wrote nothing
    assert localize_files(localizer, paths, out, progress=False).localized == 1  # the lock went with its holder


def test_run_folders_dangling_links_and_the_input_folder_are_refused_as_outputs(
    localizer: Localizer, tiny_run: Path, tmp_path: Path
) -> None:
    paths = _images(tmp_path / "in", ["a.png"])
    for out in (tiny_run, tiny_run / "seg", tiny_run / "localize"):
        with pytest.raises(FileExistsError, match=f"the spol run folder {tiny_run}; .*outside it"):
            localize_files(localizer, paths, out, force=True, progress=False)
    assert not (tiny_run / "localize").exists() and not (tiny_run / "predictions.jsonl").exists()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=r"link is a symbolic link to .*gone, which does not exist"):
        localize_files(localizer, paths, link, progress=False)
    with pytest.raises(ValueError, match=r"input folder .*in is the output folder"):
        collect_images([tmp_path / "in"], exclude=tmp_path / "in")
    with pytest.raises(ValueError, match=r"lies in it"):
        collect_images([tmp_path / "in"], exclude=tmp_path)
