"""The report's curves.

Box accuracy against the threshold, the pixel precision-recall behind PxAP, training loss and
accuracy per epoch, and what the pseudo masks hold.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spol.evaluation import ProtocolCounts
from spol.evaluation.pixel_accuracy import precision_recall
from spol.report.plots import PALETTE, Chart, Series


@dataclass(frozen=True)
class MethodCurves:
    """One method's counts on val and on test, and the threshold chosen on val."""

    label: str
    val: ProtocolCounts
    test: ProtocolCounts
    threshold: float


def box_accuracy_chart(curves: MethodCurves) -> Chart:
    """Box accuracy (largest contour) against the score-map threshold, per IoU level, on val (dashed) and test."""
    series = []
    for row, iou in enumerate(curves.test.iou_thresholds):
        colour = PALETTE[row % len(PALETTE)]
        for split, counts, dash in (("test", curves.test, None), ("val", curves.val, "4 3")):
            series.append(
                Series(
                    f"IoU {iou} {split}",
                    counts.thresholds.tolist(),
                    counts.box_accuracy("largest")[row].tolist(),
                    dash,
                    colour,
                )
            )
    return Chart(
        f"{curves.label}: box accuracy vs threshold",
        "score-map threshold",
        "correct boxes (%)",
        series,
        marks=[(curves.threshold, f"chosen on val: {curves.threshold:.2f}")],
    )


def precision_recall_chart(curves: Sequence[MethodCurves]) -> Chart | None:
    """The test split's pixel precision-recall curves (PxAP's), or None without masks."""
    series = []
    for index, method in enumerate(curves):
        if not method.test.masks:
            continue
        counters = method.test.counters
        precision, recall, defined = precision_recall(counters["foreground_hist"], counters["background_hist"])
        keep = defined & np.isfinite(precision)
        series.append(
            Series(method.label, (100 * recall[keep]).tolist(), (100 * precision[keep]).tolist(), None, PALETTE[index])
        )
    if not series:
        return None
    return Chart("Pixel precision-recall (test)", "recall (%)", "precision (%)", series, x_range=(0.0, 100.0))


def read_epoch_rows(metrics_csv: Path) -> list[dict[str, float]]:
    """The per-epoch rows of a stage's ``metrics.csv`` (epoch, loss, accuracy); none when the file is missing."""
    if not metrics_csv.is_file():
        return []
    rows = []
    with metrics_csv.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row.get("kind") == "epoch":
                rows.append({key: float(row[key]) for key in ("epoch", "loss", "accuracy") if row.get(key)})
    return rows


def training_charts(stages: Mapping[str, Path]) -> list[Chart]:
    """Loss and accuracy per epoch of each stage (its ``metrics.csv``): one chart each."""
    histories = {label: read_epoch_rows(path) for label, path in stages.items()}
    charts = []
    for key, title, unit in (
        ("loss", "Training loss per epoch", "loss"),
        ("accuracy", "Training accuracy per epoch", "%"),
    ):
        series = []
        for index, (label, rows) in enumerate(histories.items()):
            points = [(row["epoch"] + 1, row[key] * (100 if key == "accuracy" else 1)) for row in rows if key in row]
            if points:
                series.append(Series(label, [p[0] for p in points], [p[1] for p in points], None, PALETTE[index]))
        if series:
            top = max(max(s.y) for s in series)
            epochs = max(max(s.x) for s in series)
            y_range = (0.0, 100.0) if key == "accuracy" else (0.0, max(top * 1.1, 1e-6))
            charts.append(Chart(title, "epoch", unit, series, x_range=(1.0, max(epochs, 2.0)), y_range=y_range))
    return charts


__all__ = ["MethodCurves", "box_accuracy_chart", "precision_recall_chart", "read_epoch_rows", "training_charts"]
