"""How a method's numbers are shown: the rows of the metrics tables, what each number means, the text table.

A method's numbers are its ``metrics.json`` entry; the HTML report (`spol.report.html`) and the
console (`format_comparison`) show them in the rows of `METRIC_ROWS`, with SPOL minus the best
other method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spol.localization import METHOD_LABELS

METRIC_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Top-1 Loc", ("top1_loc",)),
    ("Top-5 Loc", ("top5_loc",)),
    ("GT-known Loc", ("gt_known_loc",)),
    ("MaxBoxAcc@30", ("max_box_acc", "30")),
    ("MaxBoxAcc@50", ("max_box_acc", "50")),
    ("MaxBoxAcc@70", ("max_box_acc", "70")),
    ("MaxBoxAccV2", ("max_box_acc_v2",)),
    ("PxAP", ("pxap",)),
    ("Top-1 Cls", ("cls_top1",)),
    ("threshold", ("threshold",)),
)
"""How a method's ``metrics.json`` entry is shown (report and console): label and key path; all
higher-is-better but the threshold."""

METRIC_DEFINITIONS: dict[str, str] = {
    "Top-1 Loc": "% of test images whose box overlaps a ground-truth box with IoU >= 0.5 and whose top-1 class is "
    "right (at the threshold chosen on val)",
    "Top-5 Loc": "the same, with the true class among the top 5",
    "GT-known Loc": "% of test images whose box overlaps a ground-truth box with IoU >= 0.5, the class ignored "
    "(at the threshold chosen on val)",
    "MaxBoxAcc@δ": "the best, over 100 map thresholds, % of test images whose box (largest contour) has IoU >= δ/100; "
    "δ = 30, 50, 70; it needs no threshold choice",
    "MaxBoxAccV2": "the mean of MaxBoxAcc@30, @50 and @70, each image scored by its best box over all contours "
    "(Choe et al., CVPR 2020); the number methods are chosen by, on val",
    "PxAP": "area under the pixel precision-recall curve of the map against ground-truth masks (needs masks)",
    "Top-1 Cls": "% of test images whose top-1 class is right",
    "threshold": "the map threshold chosen on val (best GT-known Loc there), relative to each map's maximum: "
    "mask = u > int(t * max(u)) with u = uint8(255 * map)",
    "IoU": "boxes are compared on the 224 x 224 protocol grid with inclusive pixel areas: (x1 - x0 + 1)(y1 - y0 + 1)",
}
"""What each reported number means, in one line each (the report's and the README's table)."""


def metric_value(entry: Mapping[str, Any] | None, keys: tuple[str, ...]) -> float | None:
    """The number at `keys` (a `METRIC_ROWS` path) in a method's entry, or None when absent or null."""
    value: Any = entry
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        # JSON turns the IoU keys into strings; accept ints from Python callers too.
        value = value.get(key, value.get(int(key)) if key.isdigit() else None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def best_other_difference(
    values: Mapping[str, float | None], keys: tuple[str, ...], method: str = "spol"
) -> float | None:
    """`method`'s value minus the best of the other methods' in a `METRIC_ROWS` row (> 0: `method` is best).

    None for the threshold row, or when `method`'s value or every other one is missing.
    """
    others = [value for name, value in values.items() if name != method and value is not None]
    mine = values.get(method)
    if mine is None or not others or keys == ("threshold",):
        return None
    return mine - max(others)


def has_test_metrics(entry: Mapping[str, Any]) -> bool:
    """Whether a method's ``metrics.json`` entry holds test metrics (not only its threshold)."""
    return "max_box_acc_v2" in entry


def format_comparison(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table of every method's test metrics, and SPOL minus the best other method.

    Without test metrics (no boxed test image) it says so instead.
    """
    methods = list(metrics)
    if not any(has_test_metrics(metrics[m]) for m in methods):
        return "no localization metrics: no boxed test image (see the report's notes)"
    labels = [METHOD_LABELS.get(m, m) for m in methods]
    others = [m for m in methods if m != "spol"]
    heading = "SPOL-best other" if "spol" in methods and others else ""
    lines = [f"{'metric':<14}" + "".join(f"{label:>9}" for label in labels) + f"{heading:>17}"]
    for name, keys in METRIC_ROWS:
        values = {m: metric_value(metrics[m], keys) for m in methods}
        cells = "".join(f"{'-' if v is None else f'{v:.2f}':>9}" for v in values.values())
        difference = best_other_difference(values, keys) if heading else None
        diff = "" if difference is None else f"{difference:+.2f}"
        lines.append(f"{name:<14}{cells}{diff:>17}")
    return "\n".join(lines)


__all__ = [
    "METRIC_DEFINITIONS",
    "METRIC_ROWS",
    "best_other_difference",
    "format_comparison",
    "has_test_metrics",
    "metric_value",
]
