"""Inference: the box extractor, the run-folder localizer (class, mask, box), its file outputs and its export."""

from spol.localization.boxes import (
    EMPTY_PROTOCOL_BOX,
    IntBox,
    ThresholdRule,
    mask_to_box,
    mask_to_protocol_box,
    threshold_mask,
)
from spol.localization.export import EXPORT_FORMATS, export_localizer
from spol.localization.folder import (
    PREDICTIONS_FILE,
    LocalizeFilesReport,
    SkippedImage,
    collect_images,
    localize_files,
)
from spol.localization.localizer import (
    LOCALIZER_CONFIG,
    Localization,
    Localizer,
    LocalizerConfig,
    write_localizer_config,
)
from spol.localization.overlay import GREEN, RED, draw_boxes, localization_overlay, tint_mask

__all__ = [
    "EMPTY_PROTOCOL_BOX",
    "EXPORT_FORMATS",
    "GREEN",
    "LOCALIZER_CONFIG",
    "PREDICTIONS_FILE",
    "RED",
    "IntBox",
    "LocalizeFilesReport",
    "Localization",
    "Localizer",
    "LocalizerConfig",
    "SkippedImage",
    "ThresholdRule",
    "collect_images",
    "draw_boxes",
    "export_localizer",
    "localization_overlay",
    "localize_files",
    "mask_to_box",
    "mask_to_protocol_box",
    "threshold_mask",
    "tint_mask",
    "write_localizer_config",
]
