"""ProtocolCounts: named counters from hand-made per-image outcomes, their sum over shards, the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from spol.evaluation import (
    EvaluationResult,
    ImageOutcome,
    ProtocolCounts,
    cam_thresholds,
    correct_at_thresholds,
    top_k_hits,
)

THRESHOLDS = cam_thresholds(0.01)


def _largest(*rows: list[bool]) -> ImageOutcome:
    return ImageOutcome({"largest": np.array(rows)})


def test_max_box_acc_and_first_best_threshold():
    counts = ProtocolCounts(np.array([0.0, 0.5, 0.9]), (50,), contours=("largest",))
    counts.add(_largest([False, True, True]))
    counts.add(_largest([True, True, False]))
    assert counts.box_accuracy().tolist() == [[50.0, 100.0, 50.0]]
    assert counts.max_box_acc() == {50: 100.0}
    assert counts.best_thresholds() == {50: 0.5} and counts.best_threshold() == 0.5
    with pytest.raises(ValueError, match="shape"):
        counts.add(_largest([True]))


def test_counts_of_the_protocols_boxes():
    counts = ProtocolCounts(THRESHOLDS, (30, 50, 70), contours=("largest",))
    s = np.zeros((224, 224))
    s[10:20, 10:20] = 1.0
    for scoremap, gt in ((s, [[10, 10, 20, 20]]), (np.zeros((224, 224)), [[100, 100, 120, 120]])):
        counts.add(ImageOutcome({"largest": correct_at_thresholds(scoremap, np.array(gt), THRESHOLDS)}))
    assert counts.max_box_acc() == {30: 50.0, 50: 50.0, 70: 50.0}
    assert counts.best_thresholds() == {30: 0.0, 50: 0.0, 70: 0.0}


def test_loc_numbers_known_counts():
    # Boxes right at IoU 0.5 for images 0, 1, 2 (at the only threshold); top-1 hit: 0 and 3, top-5 hit: 0, 1, 3.
    labels = np.array([1, 2, 3, 4])
    top5 = np.array([[1, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 0, 0, 0], [4, 0, 0, 0, 0]])
    counts = ProtocolCounts(np.array([0.0]), (50,), contours=("largest",))
    for right, hits in zip([True, True, True, False], top_k_hits(top5, labels), strict=True):
        counts.add(ImageOutcome({"largest": np.array([[right]])}, class_hits=(hits[0], hits[1])))
    result = counts.result(0.0)
    assert (result.top1_loc, result.top5_loc, result.gt_known_loc, result.cls_top1) == (25.0, 50.0, 75.0, 50.0)
    assert result.to_metrics() == {
        "top1_loc": 25.0,
        "top5_loc": 50.0,
        "gt_known_loc": 75.0,
        "max_box_acc": {"50": 75.0},
        "max_box_acc_v2": None,
        "pxap": None,
        "cls_top1": 50.0,
        "threshold": 0.0,
    }


def test_loc_uses_the_counted_threshold_nearest_the_given_one():
    counts = ProtocolCounts(np.array([0.0, 0.5]), (50,), contours=("largest",))
    counts.add(ImageOutcome({"largest": np.array([[True, False]])}, class_hits=(True, True)))
    counts.add(ImageOutcome({"largest": np.array([[True, True]])}, class_hits=(False, True)))
    assert counts.result(0.004).gt_known_loc == 100.0 and counts.result(0.004).threshold == 0.004
    assert counts.result(0.45).gt_known_loc == 50.0 and counts.result(0.45).top5_loc == 50.0
    assert counts.result().threshold == 0.0  # the split's own best, the first of equal ones
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        counts.result(1.5)


def test_every_contour_mode_gives_max_box_acc_v2_and_loc_follows_the_largest():
    counts = ProtocolCounts(np.array([0.0, 0.5]), (30, 50, 70))
    largest = np.array([[True, False], [False, False], [False, False]])
    every = np.array([[True, True], [True, True], [False, True]])
    counts.add(ImageOutcome({"largest": largest, "every": every}, class_hits=(True, True)))
    result = counts.result()
    assert result.max_box_acc == {30: 100.0, 50: 0.0, 70: 0.0} and not result.multi_contour
    assert result.max_box_acc_v2 == pytest.approx(100.0) and result.gt_known_loc == 0.0
    only_every = ProtocolCounts(np.array([0.0, 0.5]), (30, 50, 70), contours=("every",))
    only_every.add(ImageOutcome({"every": every}, class_hits=(True, True)))
    result = only_every.result()
    assert result.multi_contour and result.max_box_acc_mean == result.max_box_acc_v2 == 100.0
    assert result.threshold == 0.0 and result.gt_known_loc == 100.0 and result.top1_loc == 100.0


def test_without_classes_loc_and_classification_are_none():
    counts = ProtocolCounts(np.array([0.0]), (50,), contours=("largest",))
    counts.add(_largest([True]))
    result = counts.result(0.0)
    assert result.top1_loc is None and result.top5_loc is None and result.cls_top1 is None
    assert result.gt_known_loc == 100.0 and result.pxap is None
    assert set(result.to_json()) == {"num_images", "max_box_acc", "max_box_acc_mean", "best_cam_threshold"}


def test_masks_only_counts_pxap():
    counts = ProtocolCounts(np.array([0.0, 0.5]), contours=(), masks=True)
    # Foreground scores all in the top bin, background all in the bottom one: a perfect map.
    counts.add(ImageOutcome(histograms=(np.array([0, 0, 5, 0]), np.array([7, 0, 0, 0]))))
    result = counts.result()
    assert result.pxap == 100.0 and result.max_box_acc == {} and result.threshold is None
    assert result.to_json() == {
        "num_images": 1,
        "max_box_acc": None,
        "max_box_acc_mean": None,
        "best_cam_threshold": None,
        "pxap": 100.0,
    }


def _random_outcome(rng: np.random.Generator) -> ImageOutcome:
    return ImageOutcome(
        {mode: rng.random((3, 4)) < 0.5 for mode in ("largest", "every")},
        (rng.integers(0, 5, 6), rng.integers(0, 5, 6)),
        (bool(rng.random() < 0.5), bool(rng.random() < 0.7)),
        bool(rng.random() < 0.2),
    )


def test_counters_of_shards_add_up_to_the_counts_of_the_whole():
    rng = np.random.default_rng(0)
    outcomes = [_random_outcome(rng) for _ in range(20)]
    thresholds = np.array([0.0, 0.25, 0.5, 0.75])
    whole = ProtocolCounts(thresholds, masks=True)
    shards = [ProtocolCounts(thresholds, masks=True) for _ in range(3)]
    for index, outcome in enumerate(outcomes):
        whole.add(outcome)
        shards[index % 3].add(outcome)  # rank r takes images r, r + 3, ... as the distributed sampler does

    def sum_over_shards(counters: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: sum(shard.counters[name] for shard in shards) for name in counters}

    summed = shards[0].summed(sum_over_shards)
    assert summed.num_images == 20 and set(summed.counters) == set(whole.counters)
    assert all(np.array_equal(summed.counters[name], whole.counters[name]) for name in whole.counters)
    assert summed.result(0.5).to_metrics() == whole.result(0.5).to_metrics()
    # One shard alone is not the whole: the sum is what makes the numbers right.
    assert shards[0].summed(dict).result(0.5).to_metrics() != whole.result(0.5).to_metrics()
    with pytest.raises(ValueError, match="counter images"):
        shards[0].summed(lambda counters: {**counters, "images": np.zeros(2)})


def test_bad_settings_and_outcomes_are_refused():
    with pytest.raises(ValueError, match="must include 50"):
        ProtocolCounts(THRESHOLDS, (30, 70))
    with pytest.raises(ValueError, match="percents"):
        ProtocolCounts(THRESHOLDS, (0, 50))
    with pytest.raises(ValueError, match="distinct modes"):
        ProtocolCounts(THRESHOLDS, contours=("largest", "largest"))
    with pytest.raises(ValueError, match="no image"):
        ProtocolCounts(THRESHOLDS).result(0.5)
    counts = ProtocolCounts(THRESHOLDS, masks=True)
    with pytest.raises(ValueError, match="these counts need"):
        counts.add(_largest([True]))
    with pytest.raises(ValueError, match="histograms"):
        counts.add(ImageOutcome({mode: np.ones((3, 100), bool) for mode in ("largest", "every")}))
    assert counts.num_images == 0 and not any(value.any() for value in counts.counters.values())  # nothing counted
    with pytest.raises(ValueError, match="not counted"):
        ProtocolCounts(THRESHOLDS, contours=("largest",)).box_accuracy("every")


def test_result_is_an_evaluation_result_with_the_counted_resized_maps():
    counts = ProtocolCounts(np.array([0.0]), (50,), contours=("largest",))
    counts.add(ImageOutcome({"largest": np.array([[True]])}, resized=True))
    counts.add(_largest([False]))
    result = counts.result()
    assert isinstance(result, EvaluationResult) and result.num_resized == 1 and result.num_images == 2
