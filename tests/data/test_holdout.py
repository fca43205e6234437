import dataclasses
from pathlib import Path

import pytest

from spol.data import Dataset, ImageRecord, Problem, hold_out_val


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
