import dataclasses
from pathlib import Path

import pytest

from spol.data import Dataset, ImageRecord, Problem, draw_evaluation_splits, hold_out_val


def _dataset(train_per_class: list[int], *, test: int = 3) -> Dataset:
    records = []
    for label, count in enumerate(train_per_class):
        for i in range(count):
            image_id = f"c{label}/{i:03d}.jpg"
            records.append(
                ImageRecord(image_id, Path("/data") / image_id, label, "train", ((1.0, 2.0, 3.0, 4.0),), (10, 10))
            )
    records += [ImageRecord(f"t/{i}.jpg", Path(f"/data/t/{i}.jpg"), 0, "test", (), (5, 5)) for i in range(test)]
    return Dataset(
        "csv", Path("/data"), [f"class{k}" for k in range(len(train_per_class))], records, [Problem("p", path="x")]
    )


def test_class_balanced_share_with_at_least_one_per_class():
    dataset = _dataset([10, 20, 2, 1, 5])
    held = hold_out_val(dataset, share=0.2, seed=0)
    val = held.split("val")
    per_class = [sum(r.label == k for r in val) for k in range(5)]
    # round(0.2 n), at least 1 where n >= 2, never the last train image of a class.
    assert per_class == [2, 4, 1, 0, 1]
    assert len(held.split("train")) == 38 - 8 and len(held.split("test")) == 3
    # Moved records keep everything but the split, in the original order.
    original = {r.image_id: r for r in dataset.records}
    assert [r.image_id for r in held.records] == [r.image_id for r in dataset.records]
    assert all(dataclasses.replace(r, split="train") == original[r.image_id] for r in val)
    assert held.problems == dataset.problems and held.class_names == dataset.class_names
    assert dataset.splits() == {"train": 38, "test": 3}  # the input is left as it was


def test_seeded_and_independent_of_record_order():
    dataset = _dataset([30, 30])
    first = {r.image_id for r in hold_out_val(dataset, share=0.3, seed=7).split("val")}
    assert first == {r.image_id for r in hold_out_val(dataset, share=0.3, seed=7).split("val")}
    shuffled = dataclasses.replace(dataset, records=dataset.records[::-1])
    assert first == {r.image_id for r in hold_out_val(shuffled, share=0.3, seed=7).split("val")}
    assert first != {r.image_id for r in hold_out_val(dataset, share=0.3, seed=8).split("val")}


def test_existing_val_split_is_kept():
    dataset = _dataset([4])
    with_val = hold_out_val(dataset, share=0.5, seed=0)
    assert hold_out_val(with_val, share=0.5, seed=1) is with_val


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 1.5])
def test_share_out_of_range(share):
    with pytest.raises(ValueError, match="share"):
        hold_out_val(_dataset([4]), share=share, seed=0)


def _photos(boxed_per_class: list[int], *, per_class: int = 10, test_boxed: int = 0) -> Dataset:
    """A labelled photo folder: `per_class` train images per class, the first `boxed_per_class[k]` boxed."""
    records = []
    for label, boxed in enumerate(boxed_per_class):
        for i in range(per_class):
            image_id = f"c{label}/{i:03d}.jpg"
            boxes = ((1.0, 2.0, 3.0, 4.0),) if i < boxed else ()
            records.append(ImageRecord(image_id, Path("/d") / image_id, label, "train", boxes, (10, 10)))
    records += [
        ImageRecord(f"t/{i}.jpg", Path(f"/d/t/{i}.jpg"), i % len(boxed_per_class), "test", ((0.0, 0.0, 5.0, 5.0),))
        for i in range(test_boxed)
    ]
    return Dataset("imagefolder", Path("/d"), [f"k{k}" for k in range(len(boxed_per_class))], records)


def _per_class(dataset: Dataset, split: str) -> list[int]:
    return [sum(r.label == k for r in dataset.split(split)) for k in range(dataset.num_classes)]


def test_labels_only_leaves_val_and_test_empty():
    drawn = draw_evaluation_splits(_photos([0, 0, 0]), share=0.1, seed=0)
    assert drawn.val_from is None and drawn.test_from is None
    assert drawn.dataset.splits() == {"train": 30}
    assert drawn.describe(0.1, 0) == ["val: no image with a box", "test: no image with a box"]


def test_a_few_boxes_per_class_are_split_between_val_and_test_and_never_trained_on():
    drawn = draw_evaluation_splits(_photos([4, 4, 3]), share=0.2, seed=0)
    dataset = drawn.dataset
    assert (drawn.val_from, drawn.test_from) == ("train", "train")
    # round(0.2 * 10) = 2 wanted for each split; class 2 has 3 boxes: 2 to val (an even class index), 1 to test.
    assert _per_class(dataset, "val") == [2, 2, 2]
    assert _per_class(dataset, "test") == [2, 2, 1]
    assert all(r.boxes for r in dataset.split("val") + dataset.split("test"))
    assert not {r.image_id for r in dataset.split("val")} & {r.image_id for r in dataset.split("test")}
    assert len(dataset.split("train")) == 30 - 11
    # Seeded and independent of record order.
    shuffled = dataclasses.replace(_photos([4, 4, 3]), records=_photos([4, 4, 3]).records[::-1])
    again = draw_evaluation_splits(shuffled, share=0.2, seed=0).dataset
    assert {r.image_id for r in again.split("val")} == {r.image_id for r in dataset.split("val")}


def test_one_box_per_class_alternates_between_val_and_test():
    dataset = draw_evaluation_splits(_photos([1, 1, 1, 1]), share=0.1, seed=3).dataset
    assert _per_class(dataset, "val") == [1, 0, 1, 0]
    assert _per_class(dataset, "test") == [0, 1, 0, 1]


def test_many_boxes_leave_the_rest_in_train():
    dataset = draw_evaluation_splits(_photos([10, 10]), share=0.2, seed=0).dataset
    assert _per_class(dataset, "val") == [2, 2] and _per_class(dataset, "test") == [2, 2]
    assert _per_class(dataset, "train") == [6, 6]


def test_a_fully_boxed_train_split_with_a_test_split_gives_hold_out_vals_split():
    dataset = _dataset([10, 20, 2, 1, 5], test=0)
    dataset = dataclasses.replace(
        dataset, records=dataset.records + [ImageRecord("t.jpg", Path("/t.jpg"), 0, "test", ((0, 0, 1, 1),))]
    )
    drawn = draw_evaluation_splits(dataset, share=0.2, seed=0)
    assert (drawn.val_from, drawn.test_from) == ("train", "dataset")
    assert drawn.dataset.records == hold_out_val(dataset, share=0.2, seed=0).records


def test_boxed_test_images_without_boxed_train_images_give_half_of_themselves_to_val():
    drawn = draw_evaluation_splits(_photos([0, 0], test_boxed=6), share=0.1, seed=0)
    assert (drawn.val_from, drawn.test_from) == ("test", "dataset")
    assert _per_class(drawn.dataset, "val") == [2, 1] and _per_class(drawn.dataset, "test") == [1, 2]
    assert len(drawn.dataset.split("train")) == 20


def test_unboxed_evaluation_images_are_left_out_and_counted():
    dataset = _dataset([4, 4], test=3)  # test images without boxes
    drawn = draw_evaluation_splits(dataset, share=0.25, seed=0)
    assert drawn.unboxed_left_out == 3
    assert (drawn.val_from, drawn.test_from) == ("train", "train")
    assert any("3 val/test image(s) without a box" in line for line in drawn.describe(0.25, 0))


def test_one_train_image_per_class_leaves_val_empty_and_says_why():
    drawn = draw_evaluation_splits(_photos([1, 1, 1], per_class=1), share=0.1, seed=0)
    assert (drawn.val_from, drawn.test_from) == (None, None)
    assert drawn.dataset.splits() == {"train": 3}  # every class keeps its only image
    why = "each class keeps one train image for training, and the 3 class(es) with boxed train images have only one"
    assert drawn.has_boxes and drawn.why_empty() == why
    assert drawn.describe(0.1, 0) == [f"val: empty: {why}", f"test: empty: {why}"]


def test_one_train_image_per_class_with_a_boxed_test_split_gives_half_of_it_to_val():
    drawn = draw_evaluation_splits(_photos([1, 1], per_class=1, test_boxed=6), share=0.1, seed=0)
    assert (drawn.val_from, drawn.test_from) == ("test", "dataset")
    assert _per_class(drawn.dataset, "val") == [2, 1] and _per_class(drawn.dataset, "test") == [1, 2]
    assert _per_class(drawn.dataset, "train") == [1, 1]


def test_a_val_split_left_empty_by_too_few_boxes_says_so():
    # One class of two boxed train images: one stays for training, the other goes to test (an odd class).
    drawn = draw_evaluation_splits(_photos([0, 2], per_class=2), share=0.1, seed=0)
    assert (drawn.val_from, drawn.test_from) == (None, "train")
    assert drawn.single_image_classes == 0 and drawn.why_empty() == "too few boxed images to give it one"
