"""The plain CAM baseline (Zhou et al., CVPR 2016): last backbone stage, 1x1 conv classifier, GAP."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from spol.models.backbones import FeatureBackbone, WeightsArg, build_backbone
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
