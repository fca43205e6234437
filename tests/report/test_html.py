"""The HTML report: one valid self-contained file with the metrics table and embedded pictures."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spol.report import METRIC_ROWS, MethodVisuals, ReportSample, write_report

METRICS = {
    "spol": {
        "top1_loc": 60.0,
        "top5_loc": 70.25,
        "gt_known_loc": 80.5,
        "max_box_acc": {"30": 90.0, "50": 80.5, "70": 40.0},
        "max_box_acc_v2": 70.0,
        "pxap": None,
        "cls_top1": 75.0,
        "threshold": 0.35,
    },
    "cam": {
        "top1_loc": 50.5,
        "top5_loc": 60.0,
        "gt_known_loc": 70.0,
        "max_box_acc": {30: 85.0, 50: 70.0, 70: 45.5},  # int keys from Python callers work too
        "max_box_acc_v2": 66.0,
        "pxap": 55.0,
        "cls_top1": 75.0,
        "threshold": 0.2,
    },
}


class _Collector(HTMLParser):
    """Collects table rows (cell texts), image sources and checks that tags nest properly."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        for name in ("src", "href"):
            if values.get(name) and not values[name].startswith("data:"):
                self.external.append(values[name])
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _samples() -> list[ReportSample]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    cam = rng.random((8, 8)).astype(np.float32)  # another size than the image: resized
    pseudo = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=(32, 32))
    return [
        ReportSample(
            image_id="birds/001.jpg",
            image=image,
            gt_boxes=[(4, 4, 20, 25)],
            methods={
                "SPOL": MethodVisuals(cam=cam, pseudo_mask=pseudo, segmentation=cam, box=(5, 5, 21, 24)),
                "CAM": MethodVisuals(cam=cam, box=(0, 0, 31, 31)),
            },
        ),
        ReportSample(
            image_id="birds/<002>.jpg",
            image=image,
            gt_boxes=[],
            methods={"SPOL": MethodVisuals(segmentation=cam, box=None), "CAM": MethodVisuals()},
        ),
    ]


def test_report_is_valid_html_with_the_table_and_embedded_pictures(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    notes = ["val split held out from train: 10%, seed 0; thresholds chosen on val"]
    assert write_report(path, metrics=METRICS, samples=_samples(), notes=notes) == path
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and notes[0] in text
    assert "birds/&lt;002&gt;.jpg" in text  # ids are escaped
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert parser.stack == [] and parser.external == []

    table = _metrics_rows(parser)
    assert table["Top-1 Loc"] == ["60.00", "50.50", "+9.50"]
    assert table["MaxBoxAcc@70"] == ["40.00", "45.50", "-5.50"]
    assert table["MaxBoxAcc@30"] == ["90.00", "85.00", "+5.00"]
    assert table["PxAP"] == ["—", "55.00", ""]
    assert table["Top-1 Cls"] == ["75.00", "75.00", "+0.00"]
    assert table["threshold"] == ["0.35", "0.20", ""]

    # 2 samples x (image + SPOL cam, pseudo mask, segmentation + CAM cam), minus the 4 missing views.
    assert len(parser.images) == 2 * 5 - 3
    for source in parser.images:
        assert source.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as picture:
            assert picture.format == "PNG" and picture.size == (32, 32)
    assert not [p for p in tmp_path.iterdir() if p.name != "report.html"]  # atomic: no temporary left


def _metrics_rows(parser: _Collector) -> dict[str, list[str]]:
    """The metrics table's rows by label (the definitions table below it repeats the labels)."""
    table: dict[str, list[str]] = {}
    for row in parser.rows:
        if row and row[0] in {label for label, _ in METRIC_ROWS} and row[0] not in table:
            table[row[0]] = row[1:]
    return table


def test_three_methods_get_a_column_each_and_spol_minus_the_best_other(tmp_path: Path) -> None:
    three = {"spol": METRICS["spol"], "mffcam": {**METRICS["spol"], "top1_loc": 70.0}, "cam": METRICS["cam"]}
    details = [("data", "/data/birds (format imagefolder, 3 classes)"), ("seed", "0")]
    path = write_report(tmp_path / "report.html", metrics=three, samples=[], details=details, method="mffcam")
    text = path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert ["Metric", "SPOL", "MFF-CAM", "CAM", "SPOL − best other"] in parser.rows
    table = _metrics_rows(parser)
    assert table["Top-1 Loc"] == ["60.00", "70.00", "50.50", "-10.00"]  # SPOL - MFF-CAM, the best other
    assert table["MaxBoxAcc@70"] == ["40.00", "40.00", "45.50", "-5.50"]  # SPOL - CAM
    assert '<td class="best">70.00</td>' in text  # the best of a row in bold
    # The run's details come first, every metric is defined, and the localizing method is named.
    assert text.index("/data/birds (format imagefolder") < text.index("Top-1 Loc")
    assert ["seed", "0"] in parser.rows
    for label in ("Top-1 Loc", "GT-known Loc", "MaxBoxAccV2", "PxAP", "threshold", "IoU"):
        assert any(row[0] == label and len(row) == 2 and len(row[1]) > 20 for row in parser.rows)
    assert "<b>MFF-CAM</b> localizes by default" in text
    assert "Smoke test" not in text


def test_no_test_metrics_are_said_not_shown_as_zero_and_a_smoke_test_says_its_numbers_mean_nothing(
    tmp_path: Path,
) -> None:
    unevaluated = {m: {"threshold": 0.2, "threshold_rule": "protocol", "train": {}} for m in ("spol", "mffcam", "cam")}
    text = write_report(tmp_path / "report.html", metrics=unevaluated, samples=[]).read_text(encoding="utf-8")
    assert "No localization metrics" in text and "0.00" not in text and "SPOL − best other" not in text
    smoke = write_report(tmp_path / "smoke.html", metrics=METRICS, samples=[], smoke_test=True)
    assert "numbers mean nothing" in smoke.read_text(encoding="utf-8")


def test_bad_inputs_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metrics"):
        write_report(tmp_path / "r.html", metrics={}, samples=[])
    bad = ReportSample(image_id="x", image=np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="image"):
        write_report(tmp_path / "r.html", metrics=METRICS, samples=[bad])
    assert not (tmp_path / "r.html").exists()
