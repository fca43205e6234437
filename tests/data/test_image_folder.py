from pathlib import Path

import pytest
from PIL import Image

from spol.data import DatasetFormatError, read_dataset, read_image_folder


def _image(path: Path, size: tuple[int, int] = (4, 3)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


def _messages(dataset) -> dict[str, str]:
    """Each problem's message by its path or file:line."""
    return {p.path or p.line: p.problem for p in dataset.problems}


def test_classes_are_sorted_folders_and_labels_their_index(tmp_path):
    _image(tmp_path / "zebra" / "z.png", (5, 6))
    _image(tmp_path / "ant" / "b.jpg")
    _image(tmp_path / "ant" / "a.JPEG")  # extensions in any case
    _image(tmp_path / "Moth" / "m.bmp")  # upper case sorts first, as in torchvision
    dataset = read_image_folder(tmp_path, progress=False)
    assert dataset.problems == []
    assert dataset.format == "imagefolder" and dataset.root == tmp_path
    assert dataset.class_names == ["Moth", "ant", "zebra"]
    assert [(r.image_id, r.label, r.split, r.boxes) for r in dataset.records] == [
        ("Moth/m.bmp", 0, "train", ()),
        ("ant/a.JPEG", 1, "train", ()),
        ("ant/b.jpg", 1, "train", ()),
        ("zebra/z.png", 2, "train", ()),
    ]
    assert dataset.records[-1].size == (5, 6) and dataset.records[-1].path == tmp_path / "zebra" / "z.png"


def test_sub_folders_are_walked_in_torchvision_order(tmp_path):
    for name in ("cat/b.png", "cat/a/y.png", "cat/a/x.png", "cat/a b/w.png", "cat/a/deep/v.png"):
        _image(tmp_path / name)
    dataset = read_image_folder(tmp_path, progress=False)
    assert dataset.problems == []
    # torchvision: sorted(os.walk(...)) orders folders by path ("cat" < "cat/a" < "cat/a b" < "cat/a/deep"),
    # then files by name.
    assert [r.image_id for r in dataset.records] == [
        "cat/b.png",
        "cat/a/x.png",
        "cat/a/y.png",
        "cat/a b/w.png",
        "cat/a/deep/v.png",
    ]
    assert {r.label for r in dataset.records} == {0}


def test_same_classes_images_and_order_as_torchvision(tmp_path):
    folder = pytest.importorskip("torchvision.datasets.folder")
    from spol.data.image_folder import IMAGE_EXTENSIONS

    names = ("cat/b.png", "cat/a/y.png", "cat/a b/w.png", "cat/a/deep/v.png", "dog/Z.PNG", "dog/a-b/q.webp")
    for name in (*names, "dog/a/r.tif", "Emu/e.jpg"):
        _image(tmp_path / name)
    classes, class_to_idx = folder.find_classes(str(tmp_path))
    expected = [
        (Path(path).relative_to(tmp_path).as_posix(), label)
        for path, label in folder.make_dataset(str(tmp_path), class_to_idx, folder.IMG_EXTENSIONS)
    ]
    dataset = read_image_folder(tmp_path, progress=False)
    assert IMAGE_EXTENSIONS == folder.IMG_EXTENSIONS
    assert dataset.class_names == classes
    assert [(r.image_id, r.label) for r in dataset.records] == expected


def test_hidden_and_non_image_files_are_skipped_and_counted(tmp_path):
    _image(tmp_path / "cat" / "a.png")
    _image(tmp_path / "cat" / ".hidden.png")
    _image(tmp_path / "cat" / ".thumbs" / "t.png")
    _image(tmp_path / ".cache" / "c.png")  # hidden folder in root: not a class
    _image(tmp_path / "stray.png")  # an image, but in no class folder
    (tmp_path / "cat" / "notes.txt").write_text("a cat")
    (tmp_path / "cat" / "README").write_text("no extension")
    (tmp_path / "dog").mkdir()  # no image: a problem, and still class 1
    (tmp_path / "dog" / "labels.xml").write_text("<x/>")
    dataset = read_image_folder(tmp_path, progress=False)
    assert dataset.class_names == ["cat", "dog"]
    assert [(r.image_id, r.label) for r in dataset.records] == [("cat/a.png", 0)]
    assert _messages(dataset) == {
        str(tmp_path / ".cache"): "hidden folder; skipped",
        str(tmp_path / "stray.png"): "not inside a class folder; skipped",
        str(tmp_path / "cat" / ".hidden.png"): "hidden file; skipped",
        str(tmp_path / "cat" / ".thumbs"): "hidden folder; skipped",
        str(tmp_path / "cat" / "README"): "not an image file (no extension); skipped",
        str(tmp_path / "cat" / "notes.txt"): "not an image file (extension .txt); skipped",
        str(tmp_path / "dog" / "labels.xml"): "not an image file (extension .xml); skipped",
        str(tmp_path / "dog"): "class folder holds no image file; class dog keeps label 1",
    }
    assert len(dataset.problems) == 8


def test_a_folder_link_back_up_is_a_problem_not_a_loop(tmp_path):
    _image(tmp_path / "cat" / "a.png")
    (tmp_path / "cat" / "sub").mkdir()
    (tmp_path / "cat" / "sub" / "up").symlink_to(tmp_path / "cat", target_is_directory=True)
    (tmp_path / "dog").symlink_to(tmp_path / "cat", target_is_directory=True)  # a linked class folder is read
    dataset = read_image_folder(tmp_path, progress=False)
    assert [(r.image_id, r.label) for r in dataset.records] == [("cat/a.png", 0), ("dog/a.png", 1)]
    assert _messages(dataset) == {
        str(tmp_path / "cat" / "sub" / "up"): "folder links back to a folder above it; skipped",
        str(tmp_path / "dog" / "sub" / "up"): "folder links back to a folder above it; skipped",
    }


def test_corrupt_image_is_an_unreadable_image_problem(tmp_path):
    _image(tmp_path / "cat" / "good.jpg")
    (tmp_path / "cat" / "bad.jpg").write_bytes(b"this is not a JPEG")
    dataset = read_image_folder(tmp_path, progress=False)
    assert [r.image_id for r in dataset.records] == ["cat/good.jpg"]
    [problem] = dataset.problems
    assert problem.path == str(tmp_path / "cat" / "bad.jpg")
    assert problem.problem.startswith("unreadable image, image cat/bad.jpg skipped")


def test_boxes_csv_gives_boxes_and_reports_bad_rows(tmp_path):
    _image(tmp_path / "cat" / "a.png", (50, 40))
    _image(tmp_path / "cat" / "sub" / "b.png", (20, 10))
    _image(tmp_path / "dog" / "c.png", (8, 8))
    (tmp_path / "cat" / "notes.txt").write_text("skipped")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        "Y0,image,X0,x1,y1\n"  # column order and case are free
        "1,cat/a.png,2,10,20\n"  # 2
        "5,cat/a.png,6,30,35\n"  # 3 second box of the same image
        "0,cat/sub/b.png,15,25,5\n"  # 4 x1 beyond the 20 px width: clipped
        "\n"  # 5 blank: skipped
        "0,cat/missing.png,0,1,1\n"  # 6 not an image of the folder
        "0,cat/notes.txt,0,1,1\n"  # 7 a skipped file is not an image either
        "a,cat/a.png,0,1,1\n"  # 8 not a number
        "0,cat/a.png,0\n"  # 9 short row
        "0,cat/a.png,0,1,1,9\n"  # 10 too many fields
        "1,cat/a.png,2,10,20\n"  # 11 duplicate of line 2
        "0,dog/c.png,9,12,4\n"  # 12 entirely outside the 8x8 image: dropped
    )
    dataset = read_image_folder(tmp_path, progress=False)
    by_id = {r.image_id: r for r in dataset.records}
    assert list(by_id) == ["cat/a.png", "cat/sub/b.png", "dog/c.png"]
    assert by_id["cat/a.png"].boxes == ((2.0, 1.0, 10.0, 20.0), (6.0, 5.0, 30.0, 35.0))
    assert by_id["cat/sub/b.png"].boxes == ((15.0, 0.0, 20.0, 5.0),)
    assert by_id["dog/c.png"].boxes == ()
    problems = _messages(dataset)
    del problems[str(tmp_path / "cat" / "notes.txt")]
    assert problems == {
        f"{boxes}:6": "image cat/missing.png is not an image of the folder (root/<class>/<image>); its box is ignored",
        f"{boxes}:7": "image cat/notes.txt is not an image of the folder (root/<class>/<image>); its box is ignored",
        f"{boxes}:8": "malformed box ['0', 'a', '1', '1'] of image cat/a.png: expected four numbers; ignored",
        f"{boxes}:9": "malformed box ['0', '0', '', ''] of image cat/a.png: expected four numbers; ignored",
        f"{boxes}:10": "malformed line: 6 fields for 5 columns; ignored",
        f"{boxes}:11": f"duplicate box (2, 1, 10, 20) of image cat/a.png (first at {boxes}:2); ignored",
        f"{boxes}:4": "box (15, 0, 25, 5) outside 20x10 image, clipped to (15, 0, 20, 5) (image cat/sub/b.png)",
        f"{boxes}:12": "box (9, 0, 12, 4) lies outside the 8x8 image; dropped (image dog/c.png)",
    }
    assert [p.line for p in dataset.problems][-2:] == [f"{boxes}:4", f"{boxes}:12"]  # box checks come last


def test_boxes_csv_without_a_column_raises_naming_file_and_header(tmp_path):
    _image(tmp_path / "cat" / "a.png")
    (tmp_path / "boxes.csv").write_text("image,x,y,w,h\ncat/a.png,0,0,1,1\n")
    with pytest.raises(DatasetFormatError, match=r"boxes\.csv must start with the header image,x0,y0,x1,y1"):
        read_image_folder(tmp_path, progress=False)
    (tmp_path / "boxes.csv").write_text("")
    with pytest.raises(DatasetFormatError, match="an empty file"):
        read_image_folder(tmp_path, progress=False)


def test_unknown_boxes_column_is_a_problem(tmp_path):
    _image(tmp_path / "cat" / "a.png", (10, 10))
    (tmp_path / "boxes.csv").write_text("image,x0,y0,x1,y1,score\ncat/a.png,1,1,5,5,0.9\n")
    dataset = read_image_folder(tmp_path, progress=False)
    assert dataset.records[0].boxes == ((1.0, 1.0, 5.0, 5.0),)
    assert [(p.line, p.problem) for p in dataset.problems] == [
        (f"{tmp_path / 'boxes.csv'}:1", "unknown column(s) score; ignored")
    ]


def test_no_class_folder_or_no_folder_raises_naming_the_layout(tmp_path):
    _image(tmp_path / "a.png")
    with pytest.raises(DatasetFormatError, match=r"holds no class folder\. Expected root/<class>/<image>"):
        read_image_folder(tmp_path, progress=False)
    with pytest.raises(DatasetFormatError, match=r"absent does not exist: expected .* root/<class>/<image>"):
        read_image_folder(tmp_path / "absent", progress=False)
    with pytest.raises(DatasetFormatError, match="is not a folder"):
        read_image_folder(tmp_path / "a.png", progress=False)


def test_read_dataset_reads_imagefolder(tmp_path):
    _image(tmp_path / "b" / "x.png", (7, 5))
    _image(tmp_path / "a" / "y.png", (3, 3))
    (tmp_path / "boxes.csv").write_text("image,x0,y0,x1,y1\nb/x.png,1,1,4,4\n")
    dataset = read_dataset(tmp_path, "imagefolder", progress=False)
    assert dataset.format == "imagefolder" and dataset.class_names == ["a", "b"] and dataset.problems == []
    assert [(r.image_id, r.label, r.size, r.boxes) for r in dataset.records] == [
        ("a/y.png", 0, (3, 3), ()),
        ("b/x.png", 1, (7, 5), ((1.0, 1.0, 4.0, 4.0),)),
    ]
