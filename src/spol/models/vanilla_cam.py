"""The plain CAM (Zhou et al., CVPR 2016): the baseline network to train, and the CAM of a pretrained classifier."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from spol.models.backbone_table import build_backbone, build_classifier
from spol.models.backbones import FeatureBackbone, WeightsArg
from spol.models.mffnet import MFFNetOutput, init_new_layers


class VanillaCAM(nn.Module):
    """Class activation maps from the deepest backbone map only.

    ``maps = conv1x1_{C_5→K}(f_5)`` at stride 32, with no ReLU: the class-specific linear map of
    the original CAM, ``M_c(x, y) = sum_k w_{c,k} f_5^k(x, y) + b_c``. Because the conv is linear,
    ``logits = mean_{x,y} maps`` equals the usual ``fc(GAP(f_5))``. ``aux_logits`` is None.
    """

    def __init__(self, backbone: FeatureBackbone, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, not {num_classes}")
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.out_channels[-1], num_classes, kernel_size=1)
        init_new_layers(self.classifier)

    @property
    def normalization(self) -> str:
        """Input normalisation of the backbone: ``"imagenet"`` or ``"half"``."""
        return self.backbone.normalization

    def forward(self, x: Tensor) -> MFFNetOutput:
        """B x 3 x H x W normalised images → maps B x K x H/32 x W/32 and logits B x K."""
        maps = self.classifier(self.backbone(x)[-1])
        return MFFNetOutput(maps, maps.mean(dim=(2, 3)), None)


def build_vanilla_cam(
    *,
    backbone: str = "efficientnet_lite0",
    num_classes: int,
    weights: WeightsArg | Literal["default"] = "default",
) -> VanillaCAM:
    """The vanilla CAM network on a `build_backbone` backbone."""
    return VanillaCAM(build_backbone(backbone, weights=weights), num_classes)


class ClassifierCAM(nn.Module):
    """The CAM of a pretrained image classifier (Zhou et al., CVPR 2016): its linear head at every location.

    ``maps = W f + b`` on the classifier's last feature map ``f`` (timm's ``forward_features``,
    B x C x H/32 x W/32), one map per class; ``logits = mean_{x,y} maps``, which equals the
    classifier's own logits because pooling and the head are both linear. ``aux_logits`` is None.

    Args:
        classifier: a timm classifier (``forward_features`` and a linear ``get_classifier()``)
            with a ``normalization`` attribute, e.g. from `spol.models.build_classifier`.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        get_classifier = getattr(classifier, "get_classifier", None)
        head = get_classifier() if callable(get_classifier) else None
        if not (hasattr(classifier, "forward_features") and isinstance(head, nn.Linear)):
            raise ValueError(
                f"{type(classifier).__name__} has no forward_features and linear head; use a timm classifier "
                "(backbone 'efficientnet_lite0' or 'timm:<name>')"
            )
        self.classifier = classifier
        self.normalization: str = getattr(classifier, "normalization", "imagenet")

    def forward(self, x: Tensor) -> MFFNetOutput:
        """B x 3 x H x W normalised images → maps B x K x h x w and logits B x K."""
        features = self.classifier.forward_features(x)  # type: ignore[operator]
        head = self.classifier.get_classifier()  # type: ignore[operator]
        maps = F.conv2d(features, head.weight[:, :, None, None], head.bias)
        return MFFNetOutput(maps, maps.mean(dim=(2, 3)), None)


def build_classifier_cam(
    *,
    backbone: str = "efficientnet_lite0",
    num_classes: int = 1000,
    weights: WeightsArg | Literal["default"] = "default",
) -> ClassifierCAM:
    """`ClassifierCAM` of a `spol.models.build_classifier` classifier (with ``"default"``: ImageNet's Lite0)."""
    classifier = build_classifier(
        backbone=backbone, num_classes=num_classes, weights=weights, require_head=weights is not None
    )
    return ClassifierCAM(classifier)
