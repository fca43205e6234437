"""Bootstrap of MaxBoxAccV2 over val images: hand-made per-image hits with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from spol.evaluation import bootstrap_max_box_acc_v2


def _hits(correct_images: int, images: int = 10, thresholds: int = 4) -> np.ndarray:
    """Per image [3 IoU levels, thresholds]: the first `correct_images` images right at threshold 1 only."""
    hits = np.zeros((images, 3, thresholds), dtype=bool)
    hits[:correct_images, :, 1] = True
    return hits


def test_a_method_right_on_every_image_has_a_point_interval_and_always_wins() -> None:
    result = bootstrap_max_box_acc_v2({"spol": _hits(10), "cam": _hits(6)}, resamples=200, seed=0)
    assert result.intervals["spol"] == (100.0, 100.0)
    assert result.best_share == {"spol": 1.0, "cam": 0.0}
    low, high = result.intervals["cam"]
    assert low < 60.0 < high and 0.0 <= low and high <= 100.0  # 6 of 10 images: MaxBoxAccV2 60 on the full set
    assert result.to_json()["images"] == 10 and result.resamples == 200


def test_equal_methods_tie_to_the_first_listed_and_the_seed_repeats() -> None:
    first = bootstrap_max_box_acc_v2({"mffcam": _hits(5), "spol": _hits(5)}, resamples=100, seed=3)
    assert first.best_share == {"mffcam": 1.0, "spol": 0.0}
    again = bootstrap_max_box_acc_v2({"mffcam": _hits(5), "spol": _hits(5)}, resamples=100, seed=3)
    assert again == first


def test_the_bootstrap_centres_on_max_box_acc_v2() -> None:
    rng = np.random.default_rng(0)
    hits = rng.random((400, 3, 20)) < np.linspace(0.2, 0.7, 20)
    full = 100.0 * hits.mean(axis=0).max(axis=1).mean()
    low, high = bootstrap_max_box_acc_v2({"spol": hits}, resamples=300, seed=1).intervals["spol"]
    assert low < full < high and high - low < 15.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one method"):
        bootstrap_max_box_acc_v2({})
    with pytest.raises(ValueError, match="same, non-zero number of images"):
        bootstrap_max_box_acc_v2({"a": _hits(2, images=4), "b": _hits(2, images=5)})


def test_scores_that_differ_only_in_float_rounding_tie_to_the_first() -> None:
    # 1, 1 and 5 of 30 images right at the three IoU levels, in two orders: the same MaxBoxAccV2, whose
    # float means differ in the last bit (7.777777777777778 and 7.777777777777776).
    first = np.zeros((30, 3, 2), dtype=bool)
    for row, right in enumerate((1, 1, 5)):
        first[:right, row, 0] = True
    second = first[:, ::-1]
    result = bootstrap_max_box_acc_v2({"spol": second, "mffcam": first}, resamples=200, seed=0)
    assert result.best_share == {"spol": 1.0, "mffcam": 0.0}
