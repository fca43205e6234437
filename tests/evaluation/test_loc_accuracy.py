"""The class side of Top-1 / Top-5 Loc: hits from top classes, from a predictions CSV."""

from __future__ import annotations

import numpy as np
import pytest

from spol.evaluation import prediction_hits, read_top5_predictions, top_k_hits


def test_top_k_hits_known_values():
    labels = np.array([1, 2, 3, 4])
    top5 = np.array([[1, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 0, 0, 0], [4, 0, 0, 0, 0]])
    assert top_k_hits(top5, labels).tolist() == [[True, True], [False, True], [False, False], [True, True]]
    # Fewer classes than five: the first k; more columns than five: only the first five count.
    assert top_k_hits(np.array([[2, 1]]), np.array([1])).tolist() == [[False, True]]
    assert top_k_hits(np.array([[0, 0, 0, 0, 0, 7]]), np.array([7])).tolist() == [[False, False]]
    with pytest.raises(ValueError, match="shapes"):
        top_k_hits(top5, labels[:3])


def test_prediction_hits_from_a_predictions_csv(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("image_id,c1,c2,c3,c4,c5\n0.jpg,0,1,2,3,4\n1.jpg,0,1,2,3,4\n2.jpg,0,1,2,3,4\n3.jpg,5,6,7,8,9\n")
    predictions = read_top5_predictions(csv)
    ids, labels = ["0.jpg", "1.jpg", "2.jpg", "3.jpg"], [0, 1, 0, 1]
    # top-1 right: 0 and 2; top-5 right: 0, 1, 2
    expected = [[True, True], [False, True], [True, True], [False, False]]
    assert prediction_hits(ids, labels, predictions).tolist() == expected
    del predictions["3.jpg"]
    with pytest.raises(ValueError, match="1 evaluated images have no prediction, e.g. 3.jpg"):
        prediction_hits(ids, labels, predictions)


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
