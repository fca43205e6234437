"""Training stages: classifier, CAM network, pseudo masks, segmentation network (on `spol.runtime`)."""

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

__all__ = [
    "IGNORE_INDEX",
    "CamSystem",
    "ClassifierSystem",
    "PseudoMaskReport",
    "SegmentationSystem",
    "cam_stage_inputs",
    "classifier_stage_inputs",
    "double_threshold",
    "generate_pseudo_masks",
    "pseudo_mask_path",
    "read_pseudo_mask",
    "seg_stage_inputs",
    "train_cam",
    "train_classifier",
    "train_seg",
]
