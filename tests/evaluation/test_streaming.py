"""StreamingEvaluator: batches of maps give the numbers of the protocol computed image by image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from spol.data.records import ImageRecord
from spol.evaluation import (
    StreamingEvaluator,
    cam_thresholds,
    compute_pxap,
    correct_at_thresholds,
    load_protocol_mask,
    prepare_scoremap,
    protocol_gt_boxes,
    score_histograms,
    top_k_hits,
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


def _image_by_image(records, maps, top5, threshold):
    """The numbers written out per image: boxes of both contour modes, histograms, Loc at `threshold`."""
    thresholds = cam_thresholds(0.01)
    labels = np.array([r.label for r in records])
    single, multi = [], []
    fg = bg = 0
    for record, scoremap in zip(records, maps, strict=True):
        gt = protocol_gt_boxes(record)
        single.append(correct_at_thresholds(scoremap, gt, thresholds))
        multi.append(correct_at_thresholds(scoremap, gt, thresholds, multi_contour=True))
        hist_fg, hist_bg = score_histograms(scoremap, load_protocol_mask(record.mask_paths), thresholds)
        fg, bg = fg + hist_fg, bg + hist_bg
    n = len(records)
    accuracy = np.sum(single, axis=0).astype(np.float64) * 100.0 / float(n)
    accuracy_v2 = np.sum(multi, axis=0).astype(np.float64) * 100.0 / float(n)
    t_index = int(np.argmin(np.abs(thresholds - threshold)))
    right = np.array([c[1, t_index] for c in single])  # IoU 50
    hits = top_k_hits(top5, labels)
    return {
        "top1_loc": 100.0 * float((right & hits[:, 0]).sum()) / n,
        "top5_loc": 100.0 * float((right & hits[:, 1]).sum()) / n,
        "gt_known_loc": 100.0 * float(right.sum()) / n,
        "max_box_acc": {str(level): float(row.max()) for level, row in zip((30, 50, 70), accuracy, strict=True)},
        "max_box_acc_v2": float(np.mean([float(row.max()) for row in accuracy_v2])),
        "pxap": compute_pxap(fg, bg),
        "cls_top1": 100.0 * (int(hits[:, 0].sum()) / n),
        "threshold": threshold,
    }, float(thresholds[int(np.argmax(accuracy[1]))])


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_give_the_numbers_of_the_images(tmp_path, workers):
    records, maps, top5 = _records_and_maps(tmp_path)
    labels = np.array([r.label for r in records])
    evaluator = StreamingEvaluator(masks=True, workers=workers)
    for start in range(0, len(records), 7):  # uneven batches
        batch = slice(start, start + 7)
        evaluator.add(records[batch], maps[batch], top_k_hits(top5[batch], labels[batch]))
    counts = evaluator.finish()
    assert counts.num_images == len(records)
    expected, best = _image_by_image(records, maps, top5, threshold=0.37)
    assert counts.result(0.37).to_metrics() == expected  # exactly: the same integer counts, the same float arithmetic
    assert counts.best_threshold() == best


def test_per_image_correctness_is_kept_in_the_order_added(tmp_path):
    records, maps, _ = _records_and_maps(tmp_path, n=5)
    evaluator = StreamingEvaluator(workers=2, keep_per_image=True)
    evaluator.add(records, maps)
    evaluator.finish()
    every = evaluator.per_image_correct("every")
    assert every.shape == (5, 3, 100)
    for i, record in enumerate(records):
        expected = correct_at_thresholds(maps[i], protocol_gt_boxes(record), cam_thresholds(), multi_contour=True)
        assert np.array_equal(every[i], expected)
    with pytest.raises(ValueError, match="keep_per_image"):
        StreamingEvaluator(workers=0).per_image_correct("every")


def test_maps_of_other_sizes_are_resized_and_counted(tmp_path):
    records, maps, _ = _records_and_maps(tmp_path, n=3)
    small = cv2.resize(maps[1], (112, 112), interpolation=cv2.INTER_LINEAR)
    evaluator = StreamingEvaluator(workers=0, keep_per_image=True)
    evaluator.add(records, [maps[0], small, maps[2]])
    assert evaluator.finish().result().num_resized == 1
    resized, _ = prepare_scoremap(small, records[1].image_id)
    expected = correct_at_thresholds(resized, protocol_gt_boxes(records[1]), cam_thresholds())
    assert np.array_equal(evaluator.per_image_correct("largest")[1], expected)


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
    with pytest.raises(ValueError, match=r"2 records but \[2, 1\]"):
        StreamingEvaluator(workers=0).add(records, maps, np.ones((1, 2), bool))
