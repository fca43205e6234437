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
    DEFAULT_MIN_SCORE,
    IMAGENET_MODEL,
    LOCALIZER_CONFIG,
    METHOD_LABELS,
    UNVALIDATED_RULES,
    Localization,
    Localizer,
    LocalizerConfig,
    MethodConfig,
    imagenet_class_names,
    read_localizer_config,
    write_localizer_config,
)
from spol.localization.overlay import GREEN, RED, draw_boxes, localization_overlay, tint_mask

__all__ = [
    "DEFAULT_MIN_SCORE",
    "EMPTY_PROTOCOL_BOX",
    "EXPORT_FORMATS",
    "GREEN",
    "IMAGENET_MODEL",
    "LOCALIZER_CONFIG",
    "METHOD_LABELS",
    "PREDICTIONS_FILE",
    "RED",
    "IntBox",
    "LocalizeFilesReport",
    "Localization",
    "Localizer",
    "LocalizerConfig",
    "MethodConfig",
    "SkippedImage",
    "ThresholdRule",
    "UNVALIDATED_RULES",
    "collect_images",
    "draw_boxes",
    "imagenet_class_names",
    "export_localizer",
    "localization_overlay",
    "localize_files",
    "mask_to_box",
    "mask_to_protocol_box",
    "read_localizer_config",
    "threshold_mask",
    "tint_mask",
    "write_localizer_config",
]
