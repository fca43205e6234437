"""Training stages: classifier, CAM network, pseudo masks, segmentation network (on `spol.runtime`)."""

from spol.stages.cam import CamSystem, train_cam
from spol.stages.classifier import ClassifierSystem, train_classifier
from spol.stages.pseudo_masks import (
    IGNORE_INDEX,
    PseudoMaskReport,
    double_threshold,
    generate_pseudo_masks,
    pseudo_mask_path,
    read_pseudo_mask,
)
from spol.stages.segmentation import SegmentationSystem, train_seg

__all__ = [
    "IGNORE_INDEX",
    "CamSystem",
    "ClassifierSystem",
    "PseudoMaskReport",
    "SegmentationSystem",
    "double_threshold",
    "generate_pseudo_masks",
    "pseudo_mask_path",
    "read_pseudo_mask",
    "train_cam",
    "train_classifier",
    "train_seg",
]
