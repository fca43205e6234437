"""The release's test path, step by step: class hits file, box transform, IoU, and the whole count."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from spol.data.records import ImageRecord
from spol.evaluation.release_protocol import class_hits_for, read_release_class_hits, release_box, release_iou


def test_class_hits_are_read_from_the_releases_npy(tmp_path):
    path = tmp_path / "top1top5.npy"
    np.save(path, {"001.A/a.jpg": [True, True], "002.B/b.jpg": [np.bool_(False), np.bool_(True)], "c.jpg": [0, 0]})
    hits = read_release_class_hits(path)
    assert hits == {"001.A/a.jpg": (True, True), "002.B/b.jpg": (False, True), "c.jpg": (False, False)}
    records = [ImageRecord("001.A/a.jpg", Path("x"), 0, "test"), ImageRecord("images/c.jpg", Path("y"), 0, "test")]
    assert class_hits_for(records, hits, "f").tolist() == [[True, True], [False, False]]  # by id, else file name
    with pytest.raises(ValueError, match="no entry for image z.jpg"):
        class_hits_for([ImageRecord("z.jpg", Path("z"), 0, "test")], hits, "f")


class _Exploit:
    def __reduce__(self):  # what a crafted file would run on np.load(allow_pickle=True)
        return (os.system, ("touch pwned",))


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "top1top5.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    with path.open("wb") as file:
        file.write(header.getvalue())  # magic, version and the header of a 0-d object array
        pickle.dump(_Exploit(), file)
    with pytest.raises(ValueError, match="not allowed"):
        read_release_class_hits(path)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    np.save(tmp_path / "numbers.npy", np.arange(3))
    with pytest.raises(ValueError, match="not a pickled dict"):
        read_release_class_hits(tmp_path / "numbers.npy")


def test_boxes_go_through_resize_256_and_centre_crop_224():
    # 512 x 512: halve, then shift by 16 and clip to [0, 224].
    assert release_box((100, 50, 300, 400), (512, 512)) == pytest.approx([34, 9, 134, 184])
    assert release_box((0, 0, 600, 600), (512, 512)) == pytest.approx(
        [0, 0, 224, 224]
    )  # clipped to W - 1, then the crop
    assert release_box((0, 0, 20, 20), (512, 512)) is None  # nothing left inside the crop
    # Non-square: x by 256 / 400, y by 256 / 300.
    x0, y0, x1, y1 = release_box((40, 30, 200, 150), (400, 300))
    assert (x0, y0, x1, y1) == pytest.approx(
        [40 * 0.64 - 16, 30 * 256 / 300 - 16, 200 * 0.64 - 16, 150 * 256 / 300 - 16]
    )


def test_the_releases_iou_has_no_plus_one():
    assert release_iou([0, 0, 10, 10], [5, 5, 15, 15]) == pytest.approx(25 / 175)
    assert release_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching boxes share no area
    assert release_iou([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
