"""SPOL's pseudo masks: targets (P, G and the double threshold), their PNG codec, and their generation."""

from spol.stages.pseudo_masks.codec import pseudo_mask_path, read_pseudo_mask, write_pseudo_mask
from spol.stages.pseudo_masks.generation import (
    REPORT_NAME,
    SOURCE_NAME,
    PseudoMaskFailure,
    PseudoMaskReport,
    generate_pseudo_masks,
)
from spol.stages.pseudo_masks.targets import (
    BACKGROUND_THRESHOLD,
    FOREGROUND_THRESHOLD,
    IGNORE_INDEX,
    RESIZE,
    double_threshold,
    pseudo_mask_from_cam,
)

__all__ = [
    "BACKGROUND_THRESHOLD",
    "FOREGROUND_THRESHOLD",
    "IGNORE_INDEX",
    "REPORT_NAME",
    "RESIZE",
    "SOURCE_NAME",
    "PseudoMaskFailure",
    "PseudoMaskReport",
    "double_threshold",
    "generate_pseudo_masks",
    "pseudo_mask_from_cam",
    "pseudo_mask_path",
    "read_pseudo_mask",
    "write_pseudo_mask",
]
