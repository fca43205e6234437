"""evaluate_scoremaps over records: rescaling, resizing, sizes from headers, workers, masks, classes, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from spol.data.records import ImageRecord
from spol.evaluation import NpyScoreMaps, evaluate_scoremaps, prepare_scoremap
from spol.scoremaps import ScoreMapError


def _record(image_id: str, boxes, size=(448, 448), **kw) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        path=Path("/nonexistent") / image_id,
        label=0,
        split="test",
        boxes=tuple(boxes),
        size=size,
        **kw,
    )


def _block(x0: int, y0: int, x1: int, y1: int, shape=(224, 224)) -> np.ndarray:
    s = np.zeros(shape, np.float32)
    s[y0:y1, x0:x1] = 1.0
    return s


def test_boxes_are_rescaled_and_scored_per_iou():
    # Image 448 x 448: gt (80, 80, 160, 160) -> (40, 40, 80, 80) at 224.
    records = [_record("a.jpg", [(80, 80, 160, 160)]), _record("b.jpg", [(0, 0, 446, 446)])]
    maps = {"a.jpg": _block(40, 40, 80, 80), "b.jpg": _block(0, 0, 112, 112)}
    # a: contour box (40, 40, 80, 80): IoU 1. b: box (0, 0, 112, 112) vs (0, 0, 223, 223): 113^2 / 224^2 = 0.2545
    result = evaluate_scoremaps(records, maps.__getitem__, progress=False, workers=0)
    assert result.num_images == 2
    assert result.max_box_acc == {30: 50.0, 50: 50.0, 70: 50.0}
    assert result.best_threshold == {30: 0.0, 50: 0.0, 70: 0.0}
    assert result.max_box_acc_mean == 50.0 and result.pxap is None
    assert result.correct.shape == (3, 100, 2)
    assert result.correct[:, :, 0].all() and not result.correct[:, :, 1].any()
    assert result.num_resized == 0


def test_map_of_other_size_is_resized_and_counted():
    records = [_record("a.jpg", [(80, 80, 160, 160)])]
    small = _block(20, 20, 40, 40, shape=(112, 112))
    result = evaluate_scoremaps(records, lambda _: small, progress=False, workers=0)
    assert result.num_resized == 1
    resized, flag = prepare_scoremap(small, "a.jpg")
    assert flag and resized.shape == (224, 224) and 0 <= resized.min() and resized.max() <= 1
    assert np.array_equal(resized, np.clip(cv2.resize(small, (224, 224), interpolation=cv2.INTER_LINEAR), 0, 1))
    assert result.max_box_acc[50] == 100.0


def test_size_read_from_image_header_when_missing(tmp_path):
    Image.new("RGB", (896, 224)).save(tmp_path / "wide.png")
    record = ImageRecord(
        image_id="wide.png", path=tmp_path / "wide.png", label=0, split="test", boxes=((0, 0, 448, 223),)
    )
    # x scaled by 1/4: gt (0, 0, 112, 223)
    result = evaluate_scoremaps([record], lambda _: _block(0, 0, 112, 224), progress=False, workers=0)
    assert result.max_box_acc[70] == 100.0
    missing = ImageRecord(image_id="gone.png", path=tmp_path / "gone.png", label=0, split="test", boxes=((0, 0, 1, 1),))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        evaluate_scoremaps([missing], lambda _: _block(0, 0, 1, 1), progress=False, workers=0)


def test_workers_give_the_same_result():
    rng = np.random.default_rng(0)
    records, maps = [], {}
    for i in range(40):
        low = rng.random((7, 7)).astype(np.float32)
        s = cv2.resize(low, (224, 224), interpolation=cv2.INTER_LINEAR)
        maps[f"{i}.jpg"] = (s - s.min()) / (s.max() - s.min())
        x0, y0 = rng.integers(0, 200, 2)
        records.append(_record(f"{i}.jpg", [(x0, y0, x0 + 40, y0 + 60)], size=(224, 224)))
    for mode in ("largest", "every"):
        one = evaluate_scoremaps(records, maps.__getitem__, contours=(mode,), workers=0, progress=False)
        two = evaluate_scoremaps(records, maps.__getitem__, contours=(mode,), workers=2, progress=False)
        assert np.array_equal(one.correct, two.correct) and one.max_box_acc == two.max_box_acc
        assert one.multi_contour == (mode == "every")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((224, 224), np.nan, np.float32), "NaN"),
        (np.full((224, 224), 1.2), r"\[0, 1\]"),
        (np.zeros((1, 224, 224)), "2-D"),
        (np.zeros((224, 224), np.uint8), "float"),
    ],
)
def test_bad_map_error_names_the_image(bad, message):
    records = [_record("ok.jpg", [(0, 0, 10, 10)]), _record("bad/x.jpg", [(0, 0, 10, 10)])]
    maps = {"ok.jpg": np.zeros((224, 224)), "bad/x.jpg": bad}
    with pytest.raises(ScoreMapError, match=f"bad/x.jpg.*{message}"):
        evaluate_scoremaps(records, maps.__getitem__, progress=False, workers=0)


def test_records_need_boxes_everywhere_or_masks():
    with pytest.raises(ValueError, match="b.jpg"):
        evaluate_scoremaps(
            [_record("a.jpg", [(0, 0, 1, 1)]), _record("b.jpg", [])], lambda _: np.zeros((224, 224)), progress=False
        )
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_scoremaps([_record("b.jpg", [])], lambda _: np.zeros((224, 224)), progress=False)
    with pytest.raises(ValueError, match="no images"):
        evaluate_scoremaps([], lambda _: np.zeros((224, 224)), progress=False)
    with pytest.raises(ValueError, match="Top-k Loc needs ground-truth boxes"):
        evaluate_scoremaps(
            [_record("b.jpg", [], mask_paths=(Path("m.png"),))],
            lambda _: np.zeros((224, 224)),
            masks=True,
            class_hits=np.ones((1, 2), bool),
            progress=False,
        )


def test_masks_give_pxap_and_boxes_stay_empty_without_boxes(tmp_path):
    fg = np.zeros((100, 100), np.uint8)
    fg[20:60, 20:60] = 255
    cv2.imwrite(str(tmp_path / "m.png"), fg)
    record = _record("a.jpg", [], mask_paths=(tmp_path / "m.png",))
    perfect = cv2.resize(fg.astype(np.float32) / 255, (224, 224), interpolation=cv2.INTER_NEAREST)
    result = evaluate_scoremaps([record], lambda _: perfect, masks=True, progress=False, workers=0)
    assert result.pxap == 100.0
    assert result.max_box_acc == {} and result.max_box_acc_mean is None and not result.correct.any()


def test_npy_scoremaps_follow_wsolevaluation_names(tmp_path):
    (tmp_path / "001.a").mkdir()
    np.save(tmp_path / "001.a" / "x.jpg.npy", np.ones((3, 3)))
    np.save(tmp_path / "001.a" / "y.npy", np.zeros((3, 3)))
    maps = NpyScoreMaps(tmp_path)
    assert maps("001.a/x.jpg").sum() == 9
    assert maps("001.a/y.jpg").sum() == 0  # the docstring's layout, extension replaced
    with pytest.raises(FileNotFoundError, match="z.jpg.npy"):
        maps("001.a/z.jpg")


def test_class_hits_give_loc_numbers_at_the_best_threshold_of_the_split():
    records = [_record(f"{i}.jpg", [(0, 0, 50, 50)], size=(224, 224)) for i in range(4)]
    good = np.zeros((224, 224))
    good[0:50, 0:50] = 1.0
    maps = {"0.jpg": good, "1.jpg": good, "2.jpg": np.zeros((224, 224)), "3.jpg": good * 0.5}
    # correct boxes: 0, 1, 3; top-1 right: 0 and 2 (box wrong); top-5 right: 0, 1, 2
    hits = np.array([[True, True], [False, True], [True, True], [False, False]])
    result = evaluate_scoremaps(records, maps.__getitem__, class_hits=hits, progress=False, workers=0)
    assert result.threshold == 0.0 and result.correct[1, 0].tolist() == [True, True, False, True]
    assert (result.top1_loc, result.top5_loc, result.gt_known_loc) == (25.0, 50.0, 75.0)
    assert list(result.to_json())[-3:] == ["top1_loc", "top5_loc", "gt_known_loc"]
    with pytest.raises(ValueError, match="4 records but 3 class-hit rows"):
        evaluate_scoremaps(records, maps.__getitem__, class_hits=hits[:3], progress=False, workers=0)
