from pathlib import Path

import pytest
from PIL import Image

from spol.data import DatasetFormatError, read_csv_folder


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (0, 0, 0)).save(path)


def _folder(root: Path, csv_text: str, sizes: dict[str, tuple[int, int]]) -> Path:
    for name, size in sizes.items():
        _image(root / name, size)
    (root / "labels.csv").write_text(csv_text)
    return root


def test_names_boxes_and_splits(tmp_path):
    _folder(
        tmp_path,
        "image,label,x0,y0,x1,y1,split\n"
        "birds/a.png,sparrow,10,20,30,40,test\n"
        "birds/a.png,sparrow,1,2,3,4,test\n"
        "birds/b.png,robin,,,,,\n"
        "c.png,robin,,,,,val\n",
        {"birds/a.png": (50, 60), "birds/b.png": (20, 10), "c.png": (7, 9)},
    )
    dataset = read_csv_folder(tmp_path, progress=False)
    assert dataset.problems == []
    assert dataset.format == "csv" and dataset.class_names == ["robin", "sparrow"]  # sorted names
    assert [(r.image_id, r.label, r.split, r.size) for r in dataset.records] == [
        ("birds/a.png", 1, "test", (50, 60)),
        ("birds/b.png", 0, "train", (20, 10)),  # empty split cell: train
        ("c.png", 0, "val", (7, 9)),
    ]
    assert dataset.records[0].boxes == ((10.0, 20.0, 30.0, 40.0), (1.0, 2.0, 3.0, 4.0))
    assert dataset.records[0].path == tmp_path / "birds" / "a.png"


def test_csv_path_without_box_or_split_columns_and_integer_labels(tmp_path):
    _image(tmp_path / "x.png", (4, 4))
    _image(tmp_path / "y.png", (5, 4))
    csv = tmp_path / "my_labels.csv"
    csv.write_text("label,image\n1,x.png\n0,y.png\n")
    dataset = read_csv_folder(csv, progress=False)
    assert dataset.problems == []
    assert dataset.class_names == ["0", "1"]
    assert [(r.label, r.split, r.boxes) for r in dataset.records] == [(1, "train", ()), (0, "train", ())]


def test_integer_labels_that_leave_a_class_empty_are_a_problem(tmp_path):
    images = {name: (3, 3) for name in ("a.png", "b.png", "c.png")}
    csv = _folder(tmp_path, "image,label\na.png,1\nb.png,2\nc.png,3\n", images)
    dataset = read_csv_folder(csv, progress=False)
    assert dataset.class_names == ["0", "1", "2", "3"]
    assert [str(p) for p in dataset.problems] == [
        f"{csv / 'labels.csv'}: integer labels are class indices, so there are 4 classes and 1 of them (0) have no "
        "image; if the labels are names (e.g. numbered from 1), list them one per line in classes.txt beside labels.csv"
    ]
    (csv / "classes.txt").write_text("1\n2\n3\n")  # the fix the problem names
    fixed = read_csv_folder(csv, progress=False)
    assert fixed.problems == [] and fixed.class_names == ["1", "2", "3"]
    assert [r.label for r in fixed.records] == [0, 1, 2]


def test_classes_file_gives_order_and_unknown_classes(tmp_path):
    _folder(
        tmp_path,
        "image,label,x0,y0,x1,y1\na.png,dog,,,,\nb.png,1,,,,\nc.png,cow,,,,\nd.png,7,,,,\n",
        {"a.png": (3, 3), "b.png": (3, 3), "c.png": (3, 3), "d.png": (3, 3)},
    )
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    dataset = read_csv_folder(tmp_path, progress=False)
    assert dataset.class_names == ["dog", "cat"]
    assert [(r.image_id, r.label) for r in dataset.records] == [("a.png", 0), ("b.png", 1)]
    assert [p.line for p in dataset.problems] == [f"{tmp_path / 'labels.csv'}:4", f"{tmp_path / 'labels.csv'}:5"]
    assert all("unknown class" in p.problem for p in dataset.problems)


def test_every_bad_row_is_a_problem(tmp_path):
    csv = tmp_path / "labels.csv"
    _folder(
        tmp_path,
        "image,label,x0,y0,x1,y1,split,colour\n"
        "a.png,cat,0,0,10,10,test,red\n"  # 2 fine
        "a.png,cat,0,0,10,10,test,red\n"  # 3 duplicate box
        "a.png,dog,1,1,2,2,test,red\n"  # 4 other label for a.png
        "b.png,cat,5,5,,,train,\n"  # 5 partial box
        "c.png,cat,0,0,1,1,holdout,\n"  # 6 unknown split
        "d.png,cat,0,0,1,1,train,,extra\n"  # 7 too many fields
        ",cat,,,,,,\n"  # 8 empty image
        "e.png,cat,8,0,4,4,test,\n"  # 9 x1 < x0
        "e.png,cat,15,2,25,8,test,\n"  # 10 outside
        "gone.png,cat,,,,,,\n"  # 11 missing file
        "f.png,cat\n",  # 12 short row: box and split empty, fine
        {
            "a.png": (20, 20),
            "b.png": (20, 20),
            "c.png": (20, 20),
            "d.png": (20, 20),
            "e.png": (20, 10),
            "f.png": (2, 2),
        },
    )
    dataset = read_csv_folder(tmp_path, progress=False)
    where = [p.line or p.path for p in dataset.problems]
    # Rows first, then the images that are missing, then the boxes checked against image sizes.
    rows = [f"{csv}:{n}" for n in (1, 5, 6, 7, 8, 3, 4)]
    assert where == rows + [str(tmp_path / "gone.png"), f"{csv}:9", f"{csv}:10"]
    assert "colour" in dataset.problems[0].problem
    assert "missing" in dataset.problems[-3].problem
    assert "x1 < x0" in dataset.problems[-2].problem
    assert (
        dataset.problems[-1].problem
        == "box (15, 2, 25, 8) outside 20x10 image, clipped to (15, 2, 20, 8) (image e.png)"
    )
    assert [(r.image_id, r.boxes) for r in dataset.records] == [
        ("a.png", ((0.0, 0.0, 10.0, 10.0),)),
        ("e.png", ((15.0, 2.0, 20.0, 8.0),)),
        ("f.png", ()),
    ]


def test_format_errors(tmp_path):
    with pytest.raises(DatasetFormatError, match="labels.csv"):
        read_csv_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("path,class\na.png,cat\n")
    with pytest.raises(DatasetFormatError, match="image and label"):
        read_csv_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(DatasetFormatError, match="empty file"):
        read_csv_folder(tmp_path)
