"""Training stages: classifier, CAM network, pseudo masks, segmentation network (Lightning engine)."""

from spol.stages.cam import CamModule, train_cam
from spol.stages.classifier import ClassifierModule, train_classifier
from spol.stages.engine import fit_stage
from spol.stages.pseudo_masks import (
    IGNORE_INDEX,
    PseudoMaskReport,
    double_threshold,
    generate_pseudo_masks,
    pseudo_mask_path,
    read_pseudo_mask,
)
from spol.stages.segmentation import SegmentationModule, train_seg
from spol.stages.system import TrainingSystem

__all__ = [
    "IGNORE_INDEX",
    "CamModule",
    "ClassifierModule",
    "PseudoMaskReport",
    "SegmentationModule",
    "TrainingSystem",
    "double_threshold",
    "fit_stage",
    "generate_pseudo_masks",
    "pseudo_mask_path",
    "read_pseudo_mask",
    "train_cam",
    "train_classifier",
    "train_seg",
]
