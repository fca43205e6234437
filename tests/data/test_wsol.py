"""wsolevaluation metadata: boxes, masks, sizes from headers, malformed lines, missing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spol.data import DatasetFormatError
from spol.data.wsol import read_wsol, read_wsol_metadata


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.txt").write_text(text)
    return folder


def _box_split(root: Path) -> Path:
    return _write(
        root / "test",
        image_ids="test/001.a/1.jpg\ntest/001.a/2.jpg\ntest/002.b/3.jpg\n",
        class_labels="test/001.a/1.jpg,0\ntest/001.a/2.jpg,0\ntest/002.b/3.jpg,1\n",
        image_sizes="test/001.a/1.jpg,500,300\ntest/001.a/2.jpg,60,40\ntest/002.b/3.jpg,100,100\n",
        localization="test/001.a/1.jpg,60,27,385,231\ntest/001.a/1.jpg,1,2,3,4\ntest/001.a/2.jpg,0,0,60,40\n"
        "test/002.b/3.jpg,10,10,20,20\n",
    )


def test_boxes_sizes_labels_and_paths(tmp_path):
    dataset = read_wsol_metadata(_box_split(tmp_path), split="test")
    assert dataset.problems == []
    assert [r.image_id for r in dataset.records] == ["test/001.a/1.jpg", "test/001.a/2.jpg", "test/002.b/3.jpg"]
    first = dataset.records[0]
    assert first.boxes == ((60.0, 27.0, 385.0, 231.0), (1.0, 2.0, 3.0, 4.0))
    assert first.size == (500, 300) and first.label == 0 and first.split == "test"
    assert first.path == (tmp_path / "test/001.a/1.jpg").absolute()  # ids relative to the split folder's parent
    assert dataset.records[1].boxes == ((0.0, 0.0, 60.0, 40.0),)  # x1 = width is allowed
    assert dataset.class_names == ["0", "1"] and dataset.format == "wsol"


def test_malformed_lines_become_problems_with_file_and_line(tmp_path):
    split = _write(
        tmp_path / "val",
        image_ids="a.jpg\nb.jpg\nc.jpg\na.jpg\n",
        class_labels="a.jpg,0\nb.jpg,x\nc.jpg,1,2\nzzz.jpg,0\n",
        image_sizes="a.jpg,10,10\nb.jpg,10,10\n",
        localization="a.jpg,1,1,5,5\na.jpg,5,1,1,5\na.jpg,1,1,5\nq.jpg,1,1,2,2\na.jpg,-1,0,2,2\n",
    )
    dataset = read_wsol_metadata(split, split="val", probe_sizes=False)
    lines = {p.line for p in dataset.problems}
    ids = split / "image_ids.txt"
    labels = split / "class_labels.txt"
    loc = split / "localization.txt"
    assert f"{ids}:4" in lines  # a.jpg listed again
    assert f"{labels}:2" in lines and f"{labels}:3" in lines and f"{labels}:4" in lines
    assert {f"{loc}:2", f"{loc}:3", f"{loc}:4", f"{loc}:5"} <= lines
    assert f"{ids}:3" in lines  # c.jpg has no usable label
    assert [r.image_id for r in dataset.records] == ["a.jpg"]
    # Readers clip and report: the negative box is kept inside the image (line 5 reports it).
    assert dataset.records[0].boxes == ((1.0, 1.0, 5.0, 5.0), (0.0, 0.0, 2.0, 2.0))
    assert "clipped to (0, 0, 2, 2)" in next(p.problem for p in dataset.problems if p.line == f"{loc}:5")


def test_boxes_of_an_image_without_a_size_are_checked_without_one(tmp_path):
    split = _write(
        tmp_path / "val",
        image_ids="a.jpg\n",
        class_labels="a.jpg,0\n",
        localization="a.jpg,1,1,5,5\na.jpg,-2,1,3,4\na.jpg,5,1,1,5\na.jpg,-9,-9,-1,-1\n",
    )
    dataset = read_wsol_metadata(split, split="val", probe_sizes=False)
    (record,) = dataset.records
    assert record.size is None and record.boxes == ((1.0, 1.0, 5.0, 5.0), (0.0, 1.0, 3.0, 4.0))
    loc = split / "localization.txt"
    assert [p.line for p in dataset.problems] == [f"{loc}:2", f"{loc}:3", f"{loc}:4"]
    assert "outside image, clipped to (0, 1, 3, 4)" in dataset.problems[0].problem


def test_mask_lines_with_ignore_on_first_line_only(tmp_path):
    split = _write(
        tmp_path / "test",
        image_ids="test/x.jpg\ntest/y.jpg\n",
        class_labels="test/x.jpg,0\ntest/y.jpg,0\n",
        localization="test/x.jpg,m/x_a.png,m/x_ignore.png\ntest/x.jpg,m/x_b.png,\ntest/y.jpg,m/y_a.png,\n"
        "test/y.jpg,m/y_b.png,m/late_ignore.png\n",
    )
    masks = tmp_path / "masks"
    dataset = read_wsol_metadata(split, split="test", mask_root=masks, probe_sizes=False)
    x, y = dataset.records
    assert x.mask_paths == (masks / "m/x_a.png", masks / "m/x_b.png") and x.ignore_path == masks / "m/x_ignore.png"
    assert y.mask_paths == (masks / "m/y_a.png", masks / "m/y_b.png") and y.ignore_path is None
    assert x.size is None and x.boxes == ()
    assert [p.line for p in dataset.problems] == [f"{split / 'localization.txt'}:4"]


def test_sizes_read_from_headers_and_missing_image_is_a_problem(tmp_path):
    split = _write(tmp_path / "test", image_ids="test/a.png\ntest/b.png\n", class_labels="test/a.png,0\ntest/b.png,0\n")
    Image.fromarray(np.zeros((30, 70, 3), np.uint8)).save(tmp_path / "test" / "a.png")
    dataset = read_wsol_metadata(split, split="test", progress=False)
    assert [(r.image_id, r.size) for r in dataset.records] == [("test/a.png", (70, 30))]
    assert any("b.png" in str(p) for p in dataset.problems)


def test_missing_required_files_raise(tmp_path):
    _write(tmp_path / "test", image_ids="a.jpg\n")
    with pytest.raises(DatasetFormatError, match="class_labels.txt"):
        read_wsol_metadata(tmp_path / "test", split="test")
    with pytest.raises(DatasetFormatError, match="image_ids.txt"):
        read_wsol(tmp_path / "nothing")


def test_read_wsol_reads_every_present_split(tmp_path):
    _box_split(tmp_path)
    _write(
        tmp_path / "train", image_ids="train/t.jpg\n", class_labels="train/t.jpg,1\n", image_sizes="train/t.jpg,8,8\n"
    )
    dataset = read_wsol(tmp_path)
    assert dataset.splits() == {"train": 1, "test": 3}
    assert dataset.split("train")[0].boxes == () and dataset.num_classes == 2
    nested = tmp_path / "nested"
    _box_split(nested / "metadata")
    assert read_wsol(nested).splits() == {"test": 3}
