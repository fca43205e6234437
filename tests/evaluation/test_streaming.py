"""StreamingEvaluator / ProtocolCounts: the same numbers as evaluating stored maps, summed over shards."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from spol.data.records import ImageRecord
from spol.evaluation import (
    ProtocolCounts,
    StreamingEvaluator,
    cam_thresholds,
    evaluate_scoremaps,
    localization_accuracy,
)
from spol.scoremaps import ScoreMapError


def _records_and_maps(tmp_path: Path, n: int = 30, seed: int = 0):
    """CAM-like maps, boxes in original pixels of varied sizes, masks on disk, top-5 predictions."""
    rng = np.random.default_rng(seed)
    records, maps, top5 = [], [], []
    for i in range(n):
        width, height = int(rng.integers(100, 400)), int(rng.integers(100, 400))
        low = rng.random((7, 7)).astype(np.float32)
        s = cv2.resize(low, (224, 224), interpolation=cv2.INTER_LINEAR)
        maps.append((s - s.min()) / (s.max() - s.min()))
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        box = (x0, y0, x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2)))
        mask = np.zeros((height, width), np.uint8)
        mask[box[1] : box[3], box[0] : box[2]] = 255
        mask_path = tmp_path / f"{i}.png"
        Image.fromarray(mask).save(mask_path)
        label = int(rng.integers(0, 10))
        records.append(
            ImageRecord(
                f"{i}.jpg", tmp_path / f"{i}.jpg", label, "test", (box,), (width, height), mask_paths=(mask_path,)
            )
        )
        top5.append(rng.permutation(10)[:5])
    return records, np.stack(maps), np.stack(top5)


def _reference(records, maps, top5, threshold):
    """The numbers from whole stored splits: evaluate_scoremaps per contour mode, then Loc at `threshold`."""
    index = {r.image_id: i for i, r in enumerate(records)}
    single = evaluate_scoremaps(records, lambda image_id: maps[index[image_id]], masks=True, workers=0, progress=False)
    multi = evaluate_scoremaps(
        records, lambda image_id: maps[index[image_id]], multi_contour=True, workers=0, progress=False
    )
    t_index = int(np.argmin(np.abs(single.thresholds - threshold)))
    correct = single.correct[single.iou_thresholds.index(50), t_index]
    labels = np.array([r.label for r in records])
    loc = localization_accuracy(correct, labels, top5)
    return single, {
        **loc,
        "max_box_acc": {str(k): v for k, v in single.max_box_acc.items()},
        "max_box_acc_v2": multi.max_box_acc_mean,
        "pxap": single.pxap,
        "cls_top1": 100.0 * float((top5[:, 0] == labels).mean()),
        "threshold": threshold,
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_give_the_numbers_of_the_stored_maps(tmp_path, workers):
    records, maps, top5 = _records_and_maps(tmp_path)
    evaluator = StreamingEvaluator(masks=True, workers=workers)
    for start in range(0, len(records), 7):  # uneven batches
        evaluator.add(records[start : start + 7], maps[start : start + 7], top5[start : start + 7])
    counts = evaluator.finish()
    assert counts.num_images == len(records)
    single, expected = _reference(records, maps, top5, threshold=0.37)
    assert counts.summary(0.37) == expected  # exactly: the same integer counts, the same float arithmetic
    assert counts.best_threshold() == single.best_threshold[50]


def test_counts_of_shards_add_up_to_the_counts_of_the_whole(tmp_path):
    records, maps, top5 = _records_and_maps(tmp_path, n=21, seed=1)
    whole = StreamingEvaluator(masks=True, workers=0)
    whole.add(records, maps, top5)
    expected = whole.finish().summary(0.5)

    shards = []
    for rank in range(3):  # rank r takes images r, r + 3, ... as the distributed sampler does
        shard = StreamingEvaluator(masks=True, workers=0)
        shard.add(records[rank::3], maps[rank::3], top5[rank::3])
        shards.append(shard.finish())

    def sum_over_shards(vector: np.ndarray) -> np.ndarray:
        return np.sum([s.as_vector() for s in shards], axis=0)

    summed = shards[0].summed(sum_over_shards)
    assert summed.num_images == 21
    assert summed.summary(0.5) == expected
    # One shard alone is not the whole: the sum is what makes the numbers right.
    assert shards[0].summed(lambda v: v).summary(0.5) != expected


def test_without_classes_loc_and_classification_are_none(tmp_path):
    records, maps, _ = _records_and_maps(tmp_path, n=5)
    evaluator = StreamingEvaluator(workers=0)
    evaluator.add(records, maps)
    summary = evaluator.finish().summary(0.2)
    assert summary["top1_loc"] is None and summary["top5_loc"] is None and summary["cls_top1"] is None
    assert summary["pxap"] is None and summary["gt_known_loc"] is not None


def test_bad_maps_and_records_are_refused(tmp_path):
    records, maps, _ = _records_and_maps(tmp_path, n=2)
    evaluator = StreamingEvaluator(workers=0)
    nan = maps.copy()
    nan[1, 3, 3] = np.nan
    with pytest.raises(ScoreMapError, match="1.jpg"):
        evaluator.add(records, nan)
    unboxed = ImageRecord("x.jpg", tmp_path / "x.jpg", 0, "test", (), (10, 10))
    with pytest.raises(ValueError, match="x.jpg has no ground-truth box"):
        StreamingEvaluator(workers=0).add([unboxed], maps[:1])
    with pytest.raises(ValueError, match=r"2 records but \[1\] maps"):
        StreamingEvaluator(workers=0).add(records, maps[:1])
    with pytest.raises(ValueError, match="must include 50"):
        ProtocolCounts(cam_thresholds(), (30, 70))
    with pytest.raises(ValueError, match="no image"):
        ProtocolCounts(cam_thresholds()).summary(0.5)
