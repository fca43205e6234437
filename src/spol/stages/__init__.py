"""Training stages: classifier, CAM network, pseudo masks, segmentation network (on `spol.runtime`).

The names below are imported on first use, so that a pseudo-mask writer process, which needs only the PNG
codec, does not import Lightning and torchvision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spol.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CamSystem": "spol.stages.cam",
    "cam_stage_inputs": "spol.stages.cam",
    "train_cam": "spol.stages.cam",
    "ClassifierSystem": "spol.stages.classifier",
    "classifier_stage_inputs": "spol.stages.classifier",
    "train_classifier": "spol.stages.classifier",
    "IGNORE_INDEX": "spol.stages.pseudo_masks",
    "PseudoMaskReport": "spol.stages.pseudo_masks",
    "double_threshold": "spol.stages.pseudo_masks",
    "generate_pseudo_masks": "spol.stages.pseudo_masks",
    "pseudo_mask_path": "spol.stages.pseudo_masks",
    "read_pseudo_mask": "spol.stages.pseudo_masks",
    "SegmentationSystem": "spol.stages.segmentation",
    "seg_stage_inputs": "spol.stages.segmentation",
    "train_seg": "spol.stages.segmentation",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from spol.stages.cam import CamSystem, cam_stage_inputs, train_cam
    from spol.stages.classifier import ClassifierSystem, classifier_stage_inputs, train_classifier
    from spol.stages.pseudo_masks import (
        IGNORE_INDEX,
        PseudoMaskReport,
        double_threshold,
        generate_pseudo_masks,
        pseudo_mask_path,
        read_pseudo_mask,
    )
    from spol.stages.segmentation import SegmentationSystem, seg_stage_inputs, train_seg


__getattr__ = lazy_exports(__name__, _EXPORTS)
