import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spol.data import FORMATS, DatasetFormatError, read_dataset, summarize
from spol.data.images import SIZE_MISMATCH


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (1, 2, 3)).save(path)


def _csv_dataset(root: Path) -> Path:
    for name, size in {"a.png": (20, 20), "b.png": (10, 10), "c.png": (8, 6), "d.jpg": (64, 64)}.items():
        _image(root / name, size)
    (root / "labels.csv").write_text(
        "image,label,x0,y0,x1,y1,split\n"
        "a.png,cat,0,0,5,5,test\n"
        "a.png,cat,1,1,5,5,test\n"
        "b.png,dog,,,,,train\n"
        "c.png,dog,0,0,4,4,val\n"
        "d.jpg,cat,,,,,train\n"
        "e.png,cat,,,,,train\n"  # missing file
    )
    return root


def test_summary_counts_and_problems(tmp_path):
    dataset = read_dataset(_csv_dataset(tmp_path), "csv", progress=False)
    summary = summarize(dataset)
    assert summary == {
        "format": "csv",
        "images": {"train": 2, "val": 1, "test": 1},
        "classes": 2,
        "boxes": 3,
        "images_with_masks": 0,
        "problems": [{"problem": "image file missing; image e.png skipped", "path": str(tmp_path / "e.png")}],
    }
    assert json.loads(json.dumps(summary)) == summary
    only_test = summarize(dataset, split="test")
    assert only_test["images"] == {"test": 1} and only_test["boxes"] == 2
    assert summarize(dataset, split="val")["boxes"] == 1


def test_verify_drops_undecodable_images_from_the_counts(tmp_path):
    root = _csv_dataset(tmp_path)
    # d.jpg keeps a valid header but loses its pixels; c.png is replaced by an image of another size
    # after reading, as a stale stated size would be.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "d.jpg", quality=95)
    dataset = read_dataset(root, "csv", progress=False)
    data = (root / "d.jpg").read_bytes()
    (root / "d.jpg").write_bytes(data[: len(data) // 2])
    _image(root / "c.png", (9, 6))
    assert summarize(dataset)["images"] == {"train": 2, "val": 1, "test": 1}
    summary = summarize(dataset, verify=True, workers=2, progress=False)
    assert summary["images"] == {"train": 1, "val": 1, "test": 1}  # d.jpg left out, c.png kept
    paths = [p.get("path") for p in summary["problems"]]
    assert paths == [str(root / "e.png"), str(root / "c.png"), str(root / "d.jpg")]
    assert summary["problems"][1]["problem"].startswith(SIZE_MISMATCH)
    assert "unreadable" in summary["problems"][2]["problem"]


def _tiny_cub(root: Path) -> Path:
    _image(root / "images" / "001.a" / "x.jpg", (30, 20))
    (root / "segmentations" / "001.a").mkdir(parents=True)
    Image.new("L", (30, 20)).save(root / "segmentations" / "001.a" / "x.png")
    for name, text in {
        "images.txt": "1 001.a/x.jpg\n",
        "classes.txt": "1 001.a\n",
        "image_class_labels.txt": "1 1\n",
        "bounding_boxes.txt": "1 1 2 3 4\n",
        "train_test_split.txt": "1 0\n",
    }.items():
        (root / name).write_text(text)
    return root


def _tiny_imagenet(root: Path) -> Path:
    _image(root / "train" / "n01" / "n01_1.JPEG", (12, 10))
    return root


def _tiny_wsol(root: Path) -> Path:
    _image(root / "test" / "a" / "x.jpg", (30, 20))
    meta = root / "metadata" / "test"
    meta.mkdir(parents=True)
    (meta / "image_ids.txt").write_text("test/a/x.jpg\n")
    (meta / "class_labels.txt").write_text("test/a/x.jpg,0\n")
    (meta / "image_sizes.txt").write_text("test/a/x.jpg,30,20\n")
    (meta / "localization.txt").write_text("test/a/x.jpg,1,2,10,12\n")
    return root


def _tiny_image_folder(root: Path) -> Path:
    _image(root / "cat" / "x.png", (12, 10))
    _image(root / "dog" / "y.png", (8, 8))
    (root / "boxes.csv").write_text("image,x0,y0,x1,y1\ncat/x.png,1,1,5,5\n")
    return root


MAKERS = {
    "cub": _tiny_cub,
    "imagenet": _tiny_imagenet,
    "csv": _csv_dataset,
    "wsol": _tiny_wsol,
    "imagefolder": _tiny_image_folder,
}


@pytest.mark.parametrize("format", FORMATS)
def test_read_dataset_dispatches_by_format(tmp_path, format):
    dataset = read_dataset(MAKERS[format](tmp_path), format, progress=False)
    assert dataset.format == format
    assert dataset.records and all(r.size is not None for r in dataset.records)
    # Every other format refuses this folder with a DatasetFormatError (the CLI's exit code 2); the
    # cub, imagenet and wsol trees are folders of sub-folders, which "imagefolder" rightly reads.
    for other in FORMATS:
        if other != format and not (other == "imagefolder" and format in ("cub", "imagenet", "wsol")):
            with pytest.raises(DatasetFormatError):
                read_dataset(tmp_path, other, progress=False)


def test_cub_summary_counts_masks(tmp_path):
    summary = summarize(read_dataset(_tiny_cub(tmp_path), "cub", progress=False))
    assert summary["images"] == {"test": 1} and summary["boxes"] == 1 and summary["images_with_masks"] == 1


def test_unknown_format_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cub, wsol, imagenet, csv"):
        read_dataset(tmp_path, "voc")


def test_zero_area_boxes_are_dropped_and_counted(tmp_path):
    csv_root = tmp_path / "csv"
    _image(csv_root / "a.png", (20, 20))
    (csv_root / "labels.csv").write_text(
        "image,label,x0,y0,x1,y1,split\n"
        "a.png,cat,3,3,3,9,test\n"  # zero width
        "a.png,cat,2,5,8,5,test\n"  # zero height
        "a.png,cat,2,2,8,8,test\n"
    )
    cub_root = _tiny_cub(tmp_path / "cub")
    (cub_root / "bounding_boxes.txt").write_text("1 1 2 0 4\n")  # CUB's x y width height, width 0
    csv_summary = summarize(read_dataset(csv_root, "csv", progress=False))
    assert csv_summary["boxes"] == 1
    assert [p["problem"] for p in csv_summary["problems"]] == [
        "box (3, 3, 3, 9) has zero area (x1 == x0 or y1 == y0); dropped (image a.png)",
        "box (2, 5, 8, 5) has zero area (x1 == x0 or y1 == y0); dropped (image a.png)",
    ]
    cub_summary = summarize(read_dataset(cub_root, "cub", progress=False))
    assert cub_summary["boxes"] == 0
    assert [p["line"] for p in cub_summary["problems"]] == [f"{cub_root / 'bounding_boxes.txt'}:1"]
    assert "zero area" in cub_summary["problems"][0]["problem"]


def test_exif_turned_images_are_one_counted_problem_and_read_as_stored(tmp_path, caplog):
    exif = Image.Exif()
    for name, orientation in (("a.jpg", 6), ("b.jpg", 1), ("c.jpg", 8)):  # 6 and 8: shown turned a quarter
        exif[0x0112] = orientation
        Image.new("RGB", (40, 20), (9, 9, 9)).save(tmp_path / name, exif=exif)
    (tmp_path / "labels.csv").write_text("image,label,x0,y0,x1,y1\na.jpg,x,30,2,38,18\nb.jpg,y,,,,\nc.jpg,y,,,,\n")
    with caplog.at_level("WARNING", logger="spol.data"):
        dataset = read_dataset(tmp_path, "csv", progress=False)
    assert [r.size for r in dataset.records] == [(40, 20)] * 3  # as stored
    assert dataset.records[0].boxes == ((30.0, 2.0, 38.0, 18.0),)  # in the stored frame, not clipped
    problems = summarize(dataset)["problems"]
    assert len(problems) == 1 and problems[0]["path"] == str(tmp_path / "a.jpg")
    assert problems[0]["problem"].startswith("2 image(s) have an EXIF orientation tag that viewers apply")
    assert "rewrite them upright first" in problems[0]["problem"]
    assert [r.getMessage() for r in caplog.records] == [str(dataset.problems[0])]
