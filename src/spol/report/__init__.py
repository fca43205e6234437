"""The HTML report: metrics of SPOL and the CAM baseline side by side, with sample pictures; how metrics are shown."""

from spol.report.html import METHOD_LABELS, MethodVisuals, ReportSample, render_report, write_report
from spol.report.metrics import (
    METRIC_DEFINITIONS,
    METRIC_ROWS,
    best_other_difference,
    format_comparison,
    has_test_metrics,
    metric_value,
)
from spol.report.visuals import heatmap_overlay, pseudo_mask_overlay, to_png_base64, with_boxes

__all__ = [
    "METHOD_LABELS",
    "METRIC_DEFINITIONS",
    "METRIC_ROWS",
    "MethodVisuals",
    "ReportSample",
    "best_other_difference",
    "format_comparison",
    "has_test_metrics",
    "heatmap_overlay",
    "metric_value",
    "pseudo_mask_overlay",
    "render_report",
    "to_png_base64",
    "with_boxes",
    "write_report",
]
