from pathlib import Path

import pytest
from PIL import Image

from spol.data import DatasetFormatError, read_imagenet

WNIDS = ["n01440764", "n01443537"]


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 10, 10)).save(path, format="JPEG")


def _xml(path: Path, size: tuple[int, int] | None, objects: list[tuple[str, tuple[int, int, int, int]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    objects_xml = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    path.write_text(f"<annotation><folder>val</folder>{size_xml}{objects_xml}</annotation>")


def _train(images: Path) -> None:
    for wnid in WNIDS:
        for i in (1, 2):
            _image(images / "train" / wnid / f"{wnid}_{i}.JPEG", (32 + i, 24))


def _val_images(images: Path) -> None:
    _image(images / "val" / "ILSVRC2012_val_00000001.JPEG", (50, 40))
    _image(images / "val" / "ILSVRC2012_val_00000002.JPEG", (40, 60))


VAL_OBJECTS = {
    "ILSVRC2012_val_00000001": [(WNIDS[1], (1, 2, 30, 20)), (WNIDS[1], (5, 5, 10, 10))],
    "ILSVRC2012_val_00000002": [(WNIDS[0], (0, 0, 39, 59))],
}
VAL_SIZES = {"ILSVRC2012_val_00000001": (50, 40), "ILSVRC2012_val_00000002": (40, 60)}


@pytest.mark.parametrize("xml_folder", ["val", "val_annotations", "bbox/val", "bbox"])
def test_plain_layout_with_val_xml(tmp_path, xml_folder):
    _train(tmp_path)
    _val_images(tmp_path)
    for stem, objects in VAL_OBJECTS.items():
        _xml(tmp_path / xml_folder / f"{stem}.xml", VAL_SIZES[stem], objects)
    dataset = read_imagenet(tmp_path, progress=False)
    assert dataset.problems == []
    assert dataset.class_names == WNIDS  # no LOC_synset_mapping.txt: sorted train folders, wnids as names
    assert dataset.splits() == {"train": 4, "test": 2}
    train = dataset.split("train")
    assert [r.image_id for r in train] == [f"train/{w}/{w}_{i}.JPEG" for w in WNIDS for i in (1, 2)]
    assert [r.label for r in train] == [0, 0, 1, 1]
    assert [r.size for r in train] == [(33, 24), (34, 24)] * 2
    assert all(r.boxes == () for r in train)
    test = dataset.split("test")
    assert [r.image_id for r in test] == ["val/ILSVRC2012_val_00000001.JPEG", "val/ILSVRC2012_val_00000002.JPEG"]
    assert [r.label for r in test] == [1, 0]
    assert test[0].boxes == ((1.0, 2.0, 30.0, 20.0), (5.0, 5.0, 10.0, 10.0))
    assert [r.size for r in test] == [(50, 40), (40, 60)]


def _kaggle(root: Path) -> Path:
    images = root / "ILSVRC" / "Data" / "CLS-LOC"
    _train(images)
    _val_images(images)
    # Label order comes from the mapping file, not from sorting.
    (root / "LOC_synset_mapping.txt").write_text(
        f"{WNIDS[1]} goldfish, Carassius auratus\n{WNIDS[0]} tench, Tinca tinca\n"
    )
    lines = ["ImageId,PredictionString"]
    for stem, objects in VAL_OBJECTS.items():
        lines.append(f"{stem}," + " ".join(f"{w} {x0} {y0} {x1} {y1}" for w, (x0, y0, x1, y1) in objects) + " ")
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    _xml(
        root / "ILSVRC" / "Annotations" / "CLS-LOC" / "train" / WNIDS[0] / f"{WNIDS[0]}_2.xml",
        (34, 24),
        [(WNIDS[0], (3, 4, 20, 20))],
    )
    return images


@pytest.mark.parametrize("inner", [False, True])
def test_kaggle_layout_with_mapping_and_csv_solution(tmp_path, inner):
    images = _kaggle(tmp_path)
    dataset = read_imagenet(tmp_path / "ILSVRC" if inner else tmp_path, progress=False)
    assert dataset.problems == []
    assert dataset.root == images
    assert dataset.class_names == ["goldfish, Carassius auratus", "tench, Tinca tinca"]
    by_id = {r.image_id: r for r in dataset.records}
    assert by_id[f"train/{WNIDS[0]}/{WNIDS[0]}_1.JPEG"].label == 1
    assert by_id[f"train/{WNIDS[0]}/{WNIDS[0]}_2.JPEG"].boxes == ((3.0, 4.0, 20.0, 20.0),)
    first = by_id["val/ILSVRC2012_val_00000001.JPEG"]
    assert first.split == "test" and first.label == 0 and first.size == (50, 40)
    assert first.boxes == ((1.0, 2.0, 30.0, 20.0), (5.0, 5.0, 10.0, 10.0))


def test_val_in_class_folders_without_annotations(tmp_path):
    _train(tmp_path)
    _image(tmp_path / "val" / WNIDS[1] / "ILSVRC2012_val_00000001.JPEG", (20, 20))
    dataset = read_imagenet(tmp_path, progress=False)
    assert [(r.image_id, r.label, r.split, r.boxes) for r in dataset.split("test")] == [
        (f"val/{WNIDS[1]}/ILSVRC2012_val_00000001.JPEG", 1, "test", ())
    ]
    assert [p.problem for p in dataset.problems] == [
        f"test image val/{WNIDS[1]}/ILSVRC2012_val_00000001.JPEG has no box"
    ]


def test_every_bad_entry_is_a_problem(tmp_path):
    _train(tmp_path)
    _val_images(tmp_path)
    names = [f"ILSVRC2012_val_0000000{i}" for i in range(3, 8)]
    for name in names:
        _image(tmp_path / "val" / f"{name}.JPEG", (20, 10))
    xml = tmp_path / "val"
    _xml(xml / "ILSVRC2012_val_00000001.xml", (50, 40), [(WNIDS[1], (1, 2, 30, 20)), (WNIDS[0], (5, 5, 10, 10))])
    _xml(xml / "ILSVRC2012_val_00000002.xml", (40, 60), [(WNIDS[0], (-5, 10, 30, 70))])
    _xml(xml / f"{names[0]}.xml", (20, 10), [("n99999999", (1, 1, 5, 5))])  # unknown class
    (xml / f"{names[1]}.xml").write_text("<annotation><object>")  # malformed
    _xml(xml / f"{names[2]}.xml", (20, 10), [(WNIDS[0], (1, "x", 5, 5))])  # non-numeric box
    # names[3]: no annotation at all; names[4]: annotated with no object.
    _xml(xml / f"{names[4]}.xml", (20, 10), [])
    _xml(xml / "ILSVRC2012_val_00000099.xml", (20, 10), [(WNIDS[0], (1, 1, 5, 5))])  # no such image
    _image(tmp_path / "train" / "n00000000" / "n00000000_1.JPEG", (8, 8))  # unknown class folder
    _image(tmp_path / "train" / "n00000000" / "n00000000_2.JPEG", (8, 8))
    # A train folder named n00000000 also becomes a class when there is no mapping file, so add one.
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"{w} name of {w}\n" for w in WNIDS))

    dataset = read_imagenet(tmp_path, progress=False)
    problems = [(p.path or p.line, p.problem) for p in dataset.problems]
    val = tmp_path / "val"
    assert problems == [
        (str(tmp_path / "train" / "n00000000"), "class folder n00000000 is not a known wnid; its 2 images skipped"),
        (
            str(val / "ILSVRC2012_val_00000001.xml"),
            f"box of class {WNIDS[0]} in an image of class {WNIDS[1]} (val/ILSVRC2012_val_00000001.JPEG); dropped",
        ),
        (str(val / f"{names[0]}.xml"), f"unknown class n99999999 for image val/{names[0]}.JPEG; skipped"),
        (str(val / f"{names[1]}.xml"), problems[3][1]),
        (
            str(val / f"{names[1]}.JPEG"),
            f"no label for image val/{names[1]}.JPEG: no usable annotation names its class; skipped",
        ),
        (str(val / f"{names[2]}.xml"), problems[5][1]),
        (
            str(val / f"{names[2]}.JPEG"),
            f"no label for image val/{names[2]}.JPEG: no usable annotation names its class; skipped",
        ),
        (
            str(val / f"{names[3]}.JPEG"),
            f"no label for image val/{names[3]}.JPEG: no usable annotation names its class; skipped",
        ),
        (
            str(val / f"{names[4]}.JPEG"),
            f"no label for image val/{names[4]}.JPEG: no usable annotation names its class; skipped",
        ),
        (str(val / "ILSVRC2012_val_00000099.xml"), "annotation for a missing image ILSVRC2012_val_00000099; ignored"),
        (
            str(val / "ILSVRC2012_val_00000002.xml"),
            "box (-5, 10, 30, 70) outside 40x60 image, clipped to (0, 10, 30, 60) "
            "(image val/ILSVRC2012_val_00000002.JPEG)",
        ),
    ]
    assert "not a readable XML" in problems[3][1] and "non-numeric" in problems[5][1]
    assert [r.image_id for r in dataset.split("test")] == [
        "val/ILSVRC2012_val_00000001.JPEG",
        "val/ILSVRC2012_val_00000002.JPEG",
    ]
    assert dataset.split("test")[0].boxes == ((1.0, 2.0, 30.0, 20.0),)
    assert dataset.split("test")[1].boxes == ((0.0, 10.0, 30.0, 60.0),)
    assert len(dataset.split("train")) == 4


def test_malformed_solution_lines(tmp_path):
    _train(tmp_path)
    _val_images(tmp_path)
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000001,{WNIDS[0]} 1 2 3\n"
        f"ILSVRC2012_val_00000002,{WNIDS[0]} 1 2 3 4\n"
        f"ILSVRC2012_val_00000002,{WNIDS[1]} 1 2 3 4\n"
    )
    dataset = read_imagenet(tmp_path, progress=False)
    csv = tmp_path / "LOC_val_solution.csv"
    assert [(p.line or p.path) for p in dataset.problems] == [
        f"{csv}:2",
        f"{csv}:4",
        str(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG"),
    ]
    assert [(r.label, r.boxes, r.size) for r in dataset.split("test")] == [(0, ((1.0, 2.0, 3.0, 4.0),), (40, 60))]


def test_format_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DatasetFormatError, match="train/"):
        read_imagenet(tmp_path)
    _val_images(tmp_path)
    with pytest.raises(DatasetFormatError, match="LOC_synset_mapping.txt"):
        read_imagenet(tmp_path)
    (tmp_path / "LOC_synset_mapping.txt").write_text(f"{WNIDS[0]} tench\n")
    with pytest.raises(DatasetFormatError, match="LOC_val_solution.csv"):
        read_imagenet(tmp_path)
