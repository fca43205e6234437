"""SPOL's pseudo masks: targets (P, G and the double threshold), their PNG codec, and their generation.

The names below are imported on first use: a writer process (`generation`) imports the codec and the targets only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spol.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "pseudo_mask_path": "spol.stages.pseudo_masks.codec",
    "read_pseudo_mask": "spol.stages.pseudo_masks.codec",
    "write_pseudo_mask": "spol.stages.pseudo_masks.codec",
    "REPORT_NAME": "spol.stages.pseudo_masks.generation",
    "SOURCE_NAME": "spol.stages.pseudo_masks.generation",
    "PseudoMaskFailure": "spol.stages.pseudo_masks.generation",
    "PseudoMaskReport": "spol.stages.pseudo_masks.generation",
    "generate_pseudo_masks": "spol.stages.pseudo_masks.generation",
    "BACKGROUND_THRESHOLD": "spol.stages.pseudo_masks.targets",
    "FOREGROUND_THRESHOLD": "spol.stages.pseudo_masks.targets",
    "IGNORE_INDEX": "spol.stages.pseudo_masks.targets",
    "RESIZE": "spol.stages.pseudo_masks.targets",
    "double_threshold": "spol.stages.pseudo_masks.targets",
    "pseudo_mask_from_cam": "spol.stages.pseudo_masks.targets",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
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


__getattr__ = lazy_exports(__name__, _EXPORTS)
