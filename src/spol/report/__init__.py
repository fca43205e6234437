"""The HTML report: metrics of SPOL and the CAM baseline side by side, with sample pictures."""

from spol.report.html import METHOD_LABELS, MethodVisuals, ReportSample, render_report, write_report
from spol.report.visuals import heatmap_overlay, pseudo_mask_overlay, to_png_base64, with_boxes

__all__ = [
    "METHOD_LABELS",
    "MethodVisuals",
    "ReportSample",
    "heatmap_overlay",
    "pseudo_mask_overlay",
    "render_report",
    "to_png_base64",
    "with_boxes",
    "write_report",
]
