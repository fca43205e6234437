"""Atomic, non-destructive writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from spol.fileio import (
    NAME_MAX,
    atomic_path,
    fitting_name,
    image_id_path,
    make_numbered_folder,
    numbered_folder,
    write_json_atomic,
    write_text_atomic,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_outputs_get_the_usual_permissions_not_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644


def test_the_longest_legal_names_get_temporaries_and_suffixed_outputs_that_fit(tmp_path):  # issue 23, item 3
    image_id = "class/" + "é" * 100 + "x" * 48 + ".jpg"  # a 252-byte file name, legal
    path = image_id_path(tmp_path, image_id, ".png")
    assert path.parent == tmp_path / "class" and len(path.name.encode()) <= NAME_MAX
    assert path == image_id_path(tmp_path, image_id, ".png")  # readers find what writers wrote
    assert path != image_id_path(tmp_path, image_id.replace(".jpg", ".jpeg"), ".png")
    write_text_atomic(path, "mask")  # its temporary name would be 269 bytes long uncut
    assert path.read_text() == "mask" and [p.name for p in path.parent.iterdir()] == [path.name]
    assert image_id_path(tmp_path, "class/short.jpg", ".png") == tmp_path / "class" / "short.jpg.png"
    assert fitting_name("x" * 300, suffix="_overlay.png").endswith("_overlay.png")
    assert len(fitting_name("x" * 300, suffix="_overlay.png").encode()) == NAME_MAX


def test_numbered_folders_follow_the_first_free_name(tmp_path: Path) -> None:
    base = tmp_path / "sub" / "localize"
    assert numbered_folder(base) == base
    expected = [base, base.with_name("localize2"), base.with_name("localize3")]
    assert [make_numbered_folder(base) for _ in range(3)] == expected
    (tmp_path / "sub" / "localize4").write_text("a file takes the name too")
    assert make_numbered_folder(base) == base.with_name("localize5") and base.with_name("localize5").is_dir()
