"""The synthetic benchmark: deterministic, CUB layout, exact masks and boxes, one small part per class."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spol.data.synthetic import (
    PART_COLOURS,
    PART_SHAPES,
    SYNTHETIC_PRESETS,
    SyntheticConfig,
    class_parts,
    generate_synthetic,
    render_synthetic_sample,
)

SMALL = SyntheticConfig(num_classes=3, train_per_class=3, test_per_class=2, image_size=(72, 96), seed=7)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "data", SMALL, workers=1, progress=False)


def _index(root: Path, name: str) -> dict[int, list[str]]:
    lines = (root / name).read_text(encoding="utf-8").splitlines()
    return {int(line.split()[0]): line.split()[1:] for line in lines}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mask(root: Path, relpath: str) -> np.ndarray:
    return np.asarray(Image.open(root / "segmentations" / Path(relpath).with_suffix(".png")))


def test_same_seed_gives_identical_files_whatever_the_workers(small, tmp_path):
    again = generate_synthetic(tmp_path / "again", SMALL, workers=2, progress=False)
    assert _files(again) == _files(small)


def test_different_seed_gives_different_images(small, tmp_path):
    other = generate_synthetic(tmp_path / "other", dataclasses.replace(SMALL, seed=8), workers=1, progress=False)
    first, second = _files(small), _files(other)
    assert first.keys() == second.keys()
    jpegs = [name for name in first if name.endswith(".jpg")]
    assert all(first[name] != second[name] for name in jpegs)


def test_layout_is_cub(small):
    images = _index(small, "images.txt")
    classes = _index(small, "classes.txt")
    labels = _index(small, "image_class_labels.txt")
    boxes = _index(small, "bounding_boxes.txt")
    splits = _index(small, "train_test_split.txt")
    total = SMALL.num_classes * (SMALL.train_per_class + SMALL.test_per_class)
    assert sorted(images) == list(range(1, total + 1))
    assert set(labels) == set(boxes) == set(splits) == set(images)
    assert sorted(classes) == list(range(1, SMALL.num_classes + 1))
    for class_id, (name,) in classes.items():
        assert re.fullmatch(rf"{class_id:03d}\.[a-z]+_[a-z]+", name)

    per_class: dict[int, list[int]] = {}
    for image_id, (relpath,) in images.items():
        class_id = int(labels[image_id][0])
        assert relpath.split("/")[0] == classes[class_id][0]
        per_class.setdefault(class_id, []).append(int(splits[image_id][0]))
        assert len(boxes[image_id]) == 4 and all(re.fullmatch(r"\d+\.\d+", v) for v in boxes[image_id])

        with Image.open(small / "images" / relpath) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            width, height = image.size
        assert width == height and SMALL.image_size[0] <= width <= SMALL.image_size[1]
        with Image.open(small / "segmentations" / Path(relpath).with_suffix(".png")) as mask:
            assert mask.format == "PNG" and mask.mode == "L" and mask.size == (width, height)
            assert set(np.unique(np.asarray(mask))) == {0, 255}
    for flags in per_class.values():
        assert flags.count(1) == SMALL.train_per_class and flags.count(0) == SMALL.test_per_class


def test_reads_through_read_cub(small):
    from spol.data import read_cub

    dataset = read_cub(small, progress=False)
    assert dataset.problems == []
    assert dataset.class_names == SMALL.class_names
    assert dataset.splits() == {
        "train": SMALL.num_classes * SMALL.train_per_class,
        "test": SMALL.num_classes * SMALL.test_per_class,
    }
    for record in dataset.records:
        assert len(record.mask_paths) == 1 and record.mask_paths[0].is_file()
        mask = np.asarray(Image.open(record.mask_paths[0])) > 127
        ys, xs = np.nonzero(mask)
        # The record box is (x, y, x + w, y + h): the object spans [x0, x1) x [y0, y1).
        assert record.boxes == ((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1),)
        assert record.size == mask.shape[::-1]


def test_boxes_are_the_tight_boxes_of_the_masks(small):
    boxes = _index(small, "bounding_boxes.txt")
    for image_id, (relpath,) in _index(small, "images.txt").items():
        ys, xs = np.nonzero(_mask(small, relpath))
        x, y, w, h = (float(v) for v in boxes[image_id])
        assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_object_areas_lie_in_the_configured_range(small):
    low, high = SMALL.object_area
    for relpath, in _index(small, "images.txt").values():
        area = (_mask(small, relpath) > 0).mean()
        assert low <= area <= high


def test_each_class_shows_its_own_part_inside_the_object(small):
    images, labels = _index(small, "images.txt"), _index(small, "image_class_labels.txt")
    parts = class_parts(SMALL.num_classes)
    palette = np.array(list(PART_COLOURS.values()), dtype=float)
    for image_id, (relpath,) in images.items():
        label = int(labels[image_id][0]) - 1
        number = int(Path(relpath).stem.rsplit("_", 1)[1]) - 1
        sample = render_synthetic_sample(SMALL, label=label, number=number)
        assert np.array_equal(sample.mask, _mask(small, relpath) > 0)
        assert not (sample.part_mask & ~sample.mask).any()
        fraction = sample.part_mask.sum() / sample.mask.sum()
        # Coverage >= 0.5 of an anti-aliased shape of a few pixels: allow a pixel row's worth of slack.
        assert 0.5 * SMALL.part_area[0] <= fraction <= 1.5 * SMALL.part_area[1]
        # In the JPEG as written, the part's colour is nearest to its class's colour.
        written = np.asarray(Image.open(small / "images" / relpath).convert("RGB"), dtype=float)
        mean = written[sample.part_mask].mean(axis=0)
        nearest = list(PART_COLOURS)[int(np.argmin(np.linalg.norm(palette - mean, axis=1)))]
        assert nearest == parts[label][1]


def test_class_parts_are_unique_and_the_first_classes_differ_in_shape_and_colour():
    every = class_parts(len(PART_SHAPES) * len(PART_COLOURS))
    assert len(set(every)) == len(every)
    first = every[: len(PART_SHAPES)]
    assert len({shape for shape, _ in first}) == len({colour for _, colour in first}) == len(first)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(num_classes=len(every) + 1)


def test_object_is_textured_and_not_coloured_apart_from_backgrounds():
    # A flat or distinctively coloured body would let any saliency map find the object.
    config = SYNTHETIC_PRESETS["demo"]
    body_means, background_means = [], []
    for number in range(30):
        sample = render_synthetic_sample(config, label=number % config.num_classes, number=number)
        body = sample.image[sample.mask & ~sample.part_mask].astype(float)
        assert body.std(axis=0).mean() >= 10
        body_means.append(body.mean(axis=0))
        background_means.append(sample.image[~sample.mask].astype(float).mean(axis=0))
    assert np.linalg.norm(np.mean(body_means, axis=0) - np.mean(background_means, axis=0)) < 25
    # Each of the two is spread over many colours rather than one.
    assert np.std(body_means, axis=0).mean() > 20 and np.std(background_means, axis=0).mean() > 20


def test_robust_preset_draws_varied_sizes_and_smaller_objects():
    config = SYNTHETIC_PRESETS["robust"]
    samples = [render_synthetic_sample(config, label=n % 3, number=n) for n in range(8)]
    sides = {s.image.shape[0] for s in samples}
    assert len(sides) > 1 and all(config.image_size[0] <= side <= config.image_size[1] for side in sides)
    assert all(config.object_area[0] <= s.mask.mean() <= config.object_area[1] for s in samples)


def test_refuses_other_content_without_force_and_completes_an_interrupted_generation(tmp_path):
    config = dataclasses.replace(SMALL, num_classes=1, train_per_class=2, test_per_class=0)
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    generate_synthetic(out, config, progress=False)
    first = out / "images" / "001.red_disc" / "red_disc_0001.jpg"
    stamp = first.stat().st_mtime_ns
    generate_synthetic(out, config, progress=False)  # the same generation: nothing to do
    assert first.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another synthetic config than now: seed.*--force"):
        generate_synthetic(out, dataclasses.replace(config, seed=1), progress=False)
    # Killed midway: the unfinished stamp and no final one, an image missing, a temporary left. The rerun
    # finishes the job.
    (out / "synthetic_config.json").rename(out / "synthetic_unfinished.json")
    first.unlink()
    (first.parent / ".red_disc_0002.jpg.abcd1234.tmp").write_bytes(b"partial")
    generate_synthetic(out, config, progress=False)
    assert first.is_file() and (out / "synthetic_config.json").is_file()
    assert not list(out.rglob("*.tmp")) and not (out / "synthetic_unfinished.json").exists()
    mine = out / "notes.txt"
    mine.write_text("keep me")
    (out / "synthetic_config.json").unlink()
    with pytest.raises(FileExistsError, match="notes.txt"):
        generate_synthetic(out, config, progress=False)
    generate_synthetic(out, dataclasses.replace(config, seed=1), force=True, progress=False)
    assert mine.read_text() == "keep me"
    assert (out / "images.txt").read_text().splitlines()[0] == "1 001.red_disc/red_disc_0001.jpg"
    with pytest.raises(NotADirectoryError):
        generate_synthetic(mine, config, progress=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("object_area", (0.5, 0.2)), ("image_size", (8, 8)), ("part_area", (0.0, 0.1)), ("seed", -1)],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: value})


def test_a_cub_folder_spol_did_not_make_is_refused_and_left_as_it_was(tmp_path):  # issue 23, item 7
    config = dataclasses.replace(SMALL, num_classes=1, train_per_class=2, test_per_class=0)
    users = generate_synthetic(tmp_path / "cub", config, progress=False)
    (users / "synthetic_config.json").unlink()  # a CUB-layout folder of the user's: no stamp of spol's
    before = {path: path.read_bytes() for path in users.rglob("*") if path.is_file()}
    refused = r"cub holds a CUB-layout folder that spol data synth did not make.*--force"
    with pytest.raises(FileExistsError, match=refused):
        generate_synthetic(users, config, progress=False)
    assert {path: path.read_bytes() for path in users.rglob("*") if path.is_file()} == before
    # An interrupted generation of another config is refused too; a folder of hidden files only is empty.
    (users / "synthetic_unfinished.json").write_text(json.dumps({**dataclasses.asdict(config), "seed": 99}))
    with pytest.raises(ValueError, match="another synthetic config .unfinished. than now: seed"):
        generate_synthetic(users, config, progress=False)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"")
    assert (generate_synthetic(hidden, config, progress=False) / "synthetic_config.json").is_file()
