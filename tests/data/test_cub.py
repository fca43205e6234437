from pathlib import Path

import pytest
from PIL import Image

from spol.data import DatasetFormatError, read_cub
from spol.data.cub import INDEX_FILES

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 30)).save(path)


def _write(root: Path, name: str, lines: list[str]) -> None:
    (root / name).write_text("\n".join(lines) + "\n")


def make_cub(root: Path, *, masks: bool = False) -> Path:
    """Four images: id 1-2 class 1 (train, test), id 3 class 2 (train), id 4 class 3 (test)."""
    cub = root / "CUB_200_2011"
    cub.mkdir(parents=True)
    images = [(f"{CLASSES[c]}/img_{i}.jpg", c) for i, c in [(1, 0), (2, 0), (3, 1), (4, 2)]]
    sizes = {1: (50, 40), 2: (60, 30), 3: (40, 40), 4: (30, 50)}
    for i, (relative, _) in enumerate(images, start=1):
        _image(cub / "images" / relative, sizes[i])
        if masks:
            _image((root / "segmentations" / relative).with_suffix(".png"), sizes[i])
    _write(cub, "images.txt", [f"{i} {rel}" for i, (rel, _) in enumerate(images, start=1)])
    _write(cub, "classes.txt", [f"{i} {name}" for i, name in enumerate(CLASSES, start=1)])
    _write(cub, "image_class_labels.txt", [f"{i} {c + 1}" for i, (_, c) in enumerate(images, start=1)])
    _write(
        cub, "bounding_boxes.txt", ["1 10.0 5.0 20.0 30.0", "2 0.0 0.0 60.0 30.0", "3 1.5 2.5 3.0 4.0", "4 0 0 10 10"]
    )
    _write(cub, "train_test_split.txt", ["1 1", "2 0", "3 1", "4 0"])
    return cub


def test_reads_cub_as_distributed(tmp_path):
    cub = make_cub(tmp_path)
    dataset = read_cub(cub, progress=False)
    assert dataset.problems == []
    assert dataset.format == "cub" and dataset.class_names == CLASSES
    assert [r.image_id for r in dataset.records] == [
        f"{CLASSES[c]}/img_{i}.jpg" for i, c in [(1, 0), (2, 0), (3, 1), (4, 2)]
    ]
    assert [r.label for r in dataset.records] == [0, 0, 1, 2]
    assert [r.split for r in dataset.records] == ["train", "test", "train", "test"]
    assert dataset.splits() == {"train": 2, "test": 2}
    first = dataset.records[0]
    assert first.boxes == ((10.0, 5.0, 30.0, 35.0),)  # x, y, x + w, y + h
    assert first.size == (50, 40)
    assert first.path == cub / "images" / first.image_id
    assert dataset.records[1].boxes == ((0.0, 0.0, 60.0, 30.0),)  # touching the border is inside
    assert dataset.records[2].boxes == ((1.5, 2.5, 4.5, 6.5),)
    assert [r.size for r in dataset.records] == [(50, 40), (60, 30), (40, 40), (30, 50)]
    assert all(r.mask_paths == () for r in dataset.records)


def test_parent_folder_and_segmentations_beside_it(tmp_path):
    make_cub(tmp_path, masks=True)
    dataset = read_cub(tmp_path, progress=False)
    assert dataset.problems == []
    assert [r.mask_paths for r in dataset.records] == [
        ((tmp_path / "segmentations" / r.image_id).with_suffix(".png"),) for r in dataset.records
    ]


def test_missing_mask_is_a_problem_and_the_image_stays(tmp_path):
    make_cub(tmp_path, masks=True)
    missing = tmp_path / "segmentations" / CLASSES[1] / "img_3.png"
    missing.unlink()
    dataset = read_cub(tmp_path, progress=False)
    assert len(dataset.records) == 4 and dataset.records[2].mask_paths == ()
    assert [p.path for p in dataset.problems] == [str(missing)]


@pytest.mark.parametrize("name", [*INDEX_FILES, "images"])
def test_missing_index_file_is_a_format_error_naming_it(tmp_path, name):
    cub = make_cub(tmp_path)
    target = cub / name
    if target.is_dir():
        for child in sorted(target.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DatasetFormatError, match=name):
        read_cub(cub, progress=False)


def test_every_bad_entry_is_a_problem(tmp_path):
    cub = make_cub(tmp_path)
    # Image 5: listed, labelled, split, but its file is missing. Image 6: unreadable file.
    # Image 7: unknown class. Image 8: no split. Image 2: a box past the border; image 3: x1 < x0.
    (cub / "images" / "bad.jpg").write_bytes(b"not a jpeg")
    _write(
        cub,
        "images.txt",
        [f"{i} {CLASSES[c]}/img_{i}.jpg" for i, c in [(1, 0), (2, 0), (3, 1), (4, 2)]]
        + ["5 gone.jpg", "6 bad.jpg", "7 x.jpg", "8 y.jpg", "this-line-has-no-path", "1 duplicate.jpg"],
    )
    for name in ("x.jpg", "y.jpg"):
        _image(cub / "images" / name, (10, 10))
    _write(cub, "image_class_labels.txt", ["1 1", "2 1", "3 2", "4 3", "5 1", "6 1", "7 9", "8 1", "99 1"])
    _write(cub, "train_test_split.txt", ["1 1", "2 0", "3 1", "4 0", "5 0", "6 0", "7 0", "4 1"])
    _write(
        cub,
        "bounding_boxes.txt",
        ["1 10 5 20 30", "2 40 10 30 30", "3 5 5 -2 4", "4 0 0 10 ten", "5 0 0 1 1", "6 0 0 1 1", "8 0 0 1 1"],
    )
    dataset = read_cub(cub, workers=2, progress=False)
    problems = {(p.line or p.path): p.problem for p in dataset.problems}

    def at(name, line):
        return problems[f"{cub / name}:{line}"]

    assert "malformed" in at("images.txt", 9)
    assert "duplicate id 1" in at("images.txt", 10)
    assert "unknown class id '9'" in at("image_class_labels.txt", 7)
    assert "unknown image id 99" in at("image_class_labels.txt", 9)
    assert "duplicate id 4" in at("train_test_split.txt", 8)
    assert "no entry in train_test_split.txt" in at("images.txt", 8)
    assert at("bounding_boxes.txt", 2) == (
        f"box (40, 10, 70, 40) outside 60x30 image, clipped to (40, 10, 60, 30) (image {CLASSES[0]}/img_2.jpg)"
    )
    assert "x1 < x0" in at("bounding_boxes.txt", 3)
    assert "malformed" in at("bounding_boxes.txt", 4)
    assert "no box" in at("images.txt", 4)
    assert "missing" in problems[str(cub / "images" / "gone.jpg")]
    assert "unreadable" in problems[str(cub / "images" / "bad.jpg")]
    assert len(problems) == len(dataset.problems) == 12
    # Kept: the four good images; image 3 without its dropped box, image 4 without its malformed box.
    by_id = {r.image_id: r for r in dataset.records}
    assert sorted(by_id) == sorted(f"{CLASSES[c]}/img_{i}.jpg" for i, c in [(1, 0), (2, 0), (3, 1), (4, 2)])
    assert by_id[f"{CLASSES[0]}/img_2.jpg"].boxes == ((40.0, 10.0, 60.0, 30.0),)
    assert by_id[f"{CLASSES[1]}/img_3.jpg"].boxes == ()
    assert by_id[f"{CLASSES[2]}/img_4.jpg"].boxes == ()


def test_non_contiguous_class_ids_are_reported(tmp_path):
    cub = make_cub(tmp_path)
    _write(cub, "classes.txt", ["1 a", "2 b", "5 c"])
    _write(cub, "image_class_labels.txt", ["1 1", "2 1", "3 2", "4 5"])
    dataset = read_cub(cub, progress=False)
    assert dataset.class_names == ["a", "b", "c"]
    assert [r.label for r in dataset.records] == [0, 0, 1, 2]
    assert ["not 1..3" in p.problem for p in dataset.problems] == [True]
