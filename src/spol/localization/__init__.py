"""Inference: the box extractor, the run-folder localizer (class, mask, box), its file outputs and its export.

The names below are imported on first use, so that `spol localize` checks its inputs and output folder
before it pays for torch and the networks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spol.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "EMPTY_PROTOCOL_BOX": "spol.localization.boxes",
    "IntBox": "spol.localization.boxes",
    "ThresholdRule": "spol.localization.boxes",
    "mask_to_box": "spol.localization.boxes",
    "mask_to_protocol_box": "spol.localization.boxes",
    "threshold_mask": "spol.localization.boxes",
    "EXPORT_FORMATS": "spol.localization.export",
    "export_localizer": "spol.localization.export",
    "PREDICTIONS_FILE": "spol.localization.folder",
    "LocalizeFilesReport": "spol.localization.folder",
    "SkippedImage": "spol.localization.folder",
    "collect_images": "spol.localization.folder",
    "localize_files": "spol.localization.folder",
    "DEFAULT_MIN_SCORE": "spol.localization.localizer",
    "IMAGENET_MODEL": "spol.localization.localizer",
    "LOCALIZER_CONFIG": "spol.localization.localizer",
    "METHOD_LABELS": "spol.localization.localizer",
    "UNVALIDATED_RULES": "spol.localization.localizer",
    "Localization": "spol.localization.localizer",
    "Localizer": "spol.localization.localizer",
    "LocalizerConfig": "spol.localization.localizer",
    "MethodConfig": "spol.localization.localizer",
    "imagenet_class_names": "spol.localization.localizer",
    "read_localizer_config": "spol.localization.localizer",
    "write_localizer_config": "spol.localization.localizer",
    "GREEN": "spol.localization.overlay",
    "RED": "spol.localization.overlay",
    "draw_boxes": "spol.localization.overlay",
    "localization_overlay": "spol.localization.overlay",
    "tint_mask": "spol.localization.overlay",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
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


__getattr__ = lazy_exports(__name__, _EXPORTS)
