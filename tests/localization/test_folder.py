"""Input walking, output naming and the no-overwrite rule of `localize_files`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spol.localization import Localizer, collect_images, localize_files
from spol.localization.folder import output_stems


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
