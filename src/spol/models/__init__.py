"""Networks: feature backbones, MFF-Net (CAM and segmentation), the vanilla CAM baseline, classifiers, the predictor."""

from spol.models.backbone_table import BACKBONES, Backbone, build_backbone, build_classifier
from spol.models.backbones import FeatureBackbone
from spol.models.mffnet import (
    CrossScaleChannelAttention,
    MFFNet,
    MFFNetOutput,
    build_mffnet_cam,
    build_mffnet_seg,
    cam_distillation_loss,
)
from spol.models.predictor import Prediction, Predictor
from spol.models.registry import (
    CAM_NETWORKS,
    CLASSIFIERS,
    MODEL_BUILDERS,
    SEGMENTERS,
    export_model,
    load_exported_model,
    resolve_device,
    state_digest,
)
from spol.models.release import ReleaseNetwork, from_release
from spol.models.vanilla_cam import ClassifierCAM, VanillaCAM, build_classifier_cam, build_vanilla_cam

__all__ = [
    "BACKBONES",
    "CAM_NETWORKS",
    "CLASSIFIERS",
    "SEGMENTERS",
    "MODEL_BUILDERS",
    "Backbone",
    "ClassifierCAM",
    "CrossScaleChannelAttention",
    "FeatureBackbone",
    "MFFNet",
    "MFFNetOutput",
    "Prediction",
    "Predictor",
    "ReleaseNetwork",
    "VanillaCAM",
    "build_backbone",
    "build_classifier",
    "build_classifier_cam",
    "build_mffnet_cam",
    "build_mffnet_seg",
    "build_vanilla_cam",
    "cam_distillation_loss",
    "export_model",
    "from_release",
    "load_exported_model",
    "resolve_device",
    "state_digest",
]
