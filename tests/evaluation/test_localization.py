"""Paper-style Top-1 / Top-5 / GT-known Loc at one threshold, and the predictions CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spol.data.records import ImageRecord
from spol.evaluation import (
    choose_threshold,
    correct_at_threshold,
    evaluate_scoremaps,
    localization_accuracy,
    localization_from_predictions,
    read_top5_predictions,
)


def test_localization_accuracy_known_counts():
    correct = np.array([True, True, True, False])
    labels = np.array([1, 2, 3, 4])
    top5 = np.array([[1, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 0, 0, 0], [4, 0, 0, 0, 0]])
    # top-1 hit: images 0 and 3 (3 has a wrong box); top-5 hit: 0, 1, 3
    assert localization_accuracy(correct, labels, top5) == {"top1_loc": 25.0, "top5_loc": 50.0, "gt_known_loc": 75.0}
    with pytest.raises(ValueError, match="shapes"):
        localization_accuracy(correct, labels[:3], top5)


def _evaluated():
    records = [
        ImageRecord(
            image_id=f"{i}.jpg",
            path=Path(f"/x/{i}.jpg"),
            label=i % 2,
            split="val",
            boxes=((0, 0, 50, 50),),
            size=(224, 224),
        )
        for i in range(4)
    ]
    good = np.zeros((224, 224))
    good[0:50, 0:50] = 1.0
    maps = {"0.jpg": good, "1.jpg": good, "2.jpg": np.zeros((224, 224)), "3.jpg": good * 0.5}
    return records, evaluate_scoremaps(records, maps.__getitem__, progress=False, workers=0)


def test_threshold_choice_and_correct_vector():
    records, result = _evaluated()
    assert choose_threshold(result) == 0.0
    assert correct_at_threshold(result, 0.0).tolist() == [True, True, False, True]
    assert correct_at_threshold(result, 0.004).tolist() == [True, True, False, True]  # nearest grid point
    with pytest.raises(ValueError, match="grid"):
        correct_at_threshold(result, 1.5)
    with pytest.raises(ValueError, match="IoU level 40"):
        choose_threshold(result, 40)


def test_localization_from_predictions(tmp_path):
    records, result = _evaluated()
    csv = tmp_path / "p.csv"
    csv.write_text("image_id,c1,c2,c3,c4,c5\n0.jpg,0,1,2,3,4\n1.jpg,0,1,2,3,4\n2.jpg,0,1,2,3,4\n3.jpg,5,6,7,8,9\n")
    predictions = read_top5_predictions(csv)
    labels = {r.image_id: r.label for r in records}  # 0, 1, 0, 1
    # correct boxes: 0, 1, 3; top-1 right: 0 (and 2, box wrong); top-5 right: 0, 1, 2
    assert localization_from_predictions(result, labels, predictions) == {
        "top1_loc": 25.0,
        "top5_loc": 50.0,
        "gt_known_loc": 75.0,
    }
    del predictions["3.jpg"]
    with pytest.raises(ValueError, match="3.jpg"):
        localization_from_predictions(result, labels, predictions)


@pytest.mark.parametrize("line", ["a.jpg,1,2,3,4", "a.jpg,1,2,3,4,x", ",1,2,3,4,5"])
def test_malformed_predictions_name_the_line(tmp_path, line):
    csv = tmp_path / "p.csv"
    csv.write_text(f"b.jpg,1,2,3,4,5\n{line}\n")
    with pytest.raises(ValueError, match=r"p.csv:2"):
        read_top5_predictions(csv)


def test_repeated_prediction_and_missing_file(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("a.jpg,1,2,3,4,5\na.jpg,1,2,3,4,5\n")
    with pytest.raises(ValueError, match="listed again"):
        read_top5_predictions(csv)
    with pytest.raises(FileNotFoundError):
        read_top5_predictions(tmp_path / "none.csv")
