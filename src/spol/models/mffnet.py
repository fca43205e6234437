"""MFF-Net, the multiplicative feature fusion network of SPOL (Wei et al., CVPR 2021).

With backbone maps ``f_3, f_4, f_5`` (strides 8, 16, 32), hidden width ``D`` (128) and ``K``
outputs:

1. Cross-scale channel attention (the paper's MCA):
   ``a_i = ReLU(BN(conv1x1_{C_i→D}(GAP(f_i))))``, ``v = a_3 * a_4 * a_5``,
   ``f_i ← sigmoid(conv1x1_{D→C_i}(v)) * f_i``.
2. Projection: ``g_i = ReLU(BN(conv1x1_{C_i→D}(f_i)))``; ``g_4``, ``g_5`` resized bilinearly
   (align_corners=True) to ``g_3``'s size.
3. Fusion: ``g = g_3 * g_4 * g_5``.
4. Head: ``out = conv1x1_{D→K}(dropout_{0.5}(g))`` — CAM network: ``ReLU(out)`` are the class
   maps and their spatial mean the logits; segmentation network: ``K = 1`` and ``out`` are
   per-pixel object logits (no ReLU).

The CUB recipe adds a deep-only branch: ``p_1 = mean(ReLU(conv1x1_{D→K}(dropout(g_5))))`` with
the same final conv, distilled into the fused logits ``p_2`` by `cam_distillation_loss`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spol.models.backbone_table import build_backbone
from spol.models.backbones import FeatureBackbone, WeightsArg
from spol.models.layers import cross_entropy, resize_bilinear

HIDDEN_CHANNELS = 128
DROPOUT = 0.5


class MFFNetOutput(NamedTuple):
    """What MFF-Net and the vanilla CAM network return.

    Attributes:
        maps: B x K x h x w float maps (MFF-Net: stride 8). CAM network: ReLU'd class activation
            maps, channel c is the CAM of class c. Segmentation network: K = 1 per-pixel object
            logits (apply a sigmoid for probabilities).
        logits: B x K class logits, the spatial mean of `maps` (CAM networks); None for segmentation.
        aux_logits: B x K logits of the deep-only branch (``g_5`` through the same final conv,
            ReLU, spatial mean) when that branch is on; else None.
    """

    maps: Tensor
    logits: Tensor | None
    aux_logits: Tensor | None


def init_new_layers(module: nn.Module) -> None:
    """The release's initialisation of new layers: Kaiming-normal (fan_in, ReLU) convs with zero bias, BN 1/0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@contextlib.contextmanager
def _without_float16_autocast(x: Tensor) -> Iterator[bool]:
    """Autocast off while float16 autocast is on for `x`'s device (yields True then), else nothing changes."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.float16:
        with torch.autocast(device, enabled=False):
            yield True
    else:
        yield False


def _product(tensors: list[Tensor]) -> Tensor:
    # Deepest first (a_5 * a_4 * a_3), the release's order: float products are not associative, and
    # this order makes a release checkpoint give bit-identical outputs (`spol.models.from_release`).
    result = tensors[-1]
    for tensor in reversed(tensors[:-1]):
        result = result * tensor
    return result


class CrossScaleChannelAttention(nn.Module):
    """The MCA module: channel gates shared across scales through a multiplied descriptor.

    ``a_i = ReLU(BN(conv1x1_{C_i→D}(GAP(f_i))))``, ``v = a_3 * a_4 * a_5`` (B x D x 1 x 1),
    ``f_i ← sigmoid(conv1x1_{D→C_i}(v)) * f_i``.
    """

    def __init__(self, in_channels: tuple[int, ...], hidden_channels: int = HIDDEN_CHANNELS) -> None:
        super().__init__()
        self.squeeze = nn.ModuleList(_conv_bn_relu(c, hidden_channels) for c in in_channels)
        self.excite = nn.ModuleList(nn.Conv2d(hidden_channels, c, kernel_size=1) for c in in_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Gate each B x C_i x h_i x w_i map by its channel weights; shapes are unchanged."""
        descriptors = [
            squeeze(f.mean(dim=(2, 3), keepdim=True)) for squeeze, f in zip(self.squeeze, features, strict=True)
        ]
        shared = _product(descriptors)
        return [torch.sigmoid(excite(shared)) * f for excite, f in zip(self.excite, features, strict=True)]


class MFFNet(nn.Module):
    """Multiplicative feature fusion network: class maps (CAM) or object logits (segmentation) at stride 8.

    Args:
        backbone: returns ``[f3, f4, f5]`` at strides 8, 16, 32.
        num_outputs: K, the number of classes (CAM) or 1 (segmentation).
        head: ``"cam"`` (ReLU'd maps, logits = spatial mean) or ``"seg"`` (raw logits, no ReLU).
        aux_branch: also return the deep-only branch's logits (CUB recipe; CAM head only).
        hidden_channels: D, the width of the attention descriptor and of the projections.
        dropout: drop probability before the final conv, active in training mode only.

    Parameter names: ``backbone.*`` (pretrained), ``attention.*``, ``projections.*`` and
    ``classifier.*`` (new layers, initialised by `init_new_layers`).
    """

    def __init__(
        self,
        backbone: FeatureBackbone,
        num_outputs: int,
        *,
        head: Literal["cam", "seg"] = "cam",
        aux_branch: bool = False,
        hidden_channels: int = HIDDEN_CHANNELS,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        if head not in ("cam", "seg"):
            raise ValueError(f"head must be 'cam' or 'seg', not {head!r}")
        if aux_branch and head != "cam":
            raise ValueError("aux_branch=True needs head='cam': the deep-only branch distils class logits")
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be at least 1, not {num_outputs}")
        self.head = head
        self.aux_branch = aux_branch
        self.backbone = backbone
        self.attention = CrossScaleChannelAttention(backbone.out_channels, hidden_channels)
        self.projections = nn.ModuleList(_conv_bn_relu(c, hidden_channels) for c in backbone.out_channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(hidden_channels, num_outputs, kernel_size=1)
        for part in (self.attention, self.projections, self.classifier):
            init_new_layers(part)

    @property
    def normalization(self) -> str:
        """Input normalisation of the backbone: ``"imagenet"`` or ``"half"``."""
        return self.backbone.normalization

    def _head(self, fused: Tensor) -> Tensor:
        out = self.classifier(self.dropout(fused))
        return F.relu(out) if self.head == "cam" else out

    def forward(self, x: Tensor) -> MFFNetOutput:
        """Run the network on B x 3 x H x W normalised images; maps are B x K x H/8 x W/8.

        Under float16 autocast the product of the three maps and the head run in float32: the product
        of three small activations falls below float16's normal range (1-11 % of its non-zero values
        on trained networks), which moved the maps by up to 5 %. bfloat16 has float32's range.
        """
        features = self.attention(self.backbone(x))
        g3, g4, g5 = (projection(f) for projection, f in zip(self.projections, features, strict=True))
        size = g3.shape[-2:]
        g4 = resize_bilinear(g4, size, align_corners=True)
        g5 = resize_bilinear(g5, size, align_corners=True)
        with _without_float16_autocast(x) as full_precision:
            if full_precision:
                g3, g4, g5 = g3.float(), g4.float(), g5.float()
            # The deep branch runs first so that, under one seed, dropout masks are drawn in the
            # release's order (its training forward drops g5 before the fused map).
            aux_logits = self._head(g5).mean(dim=(2, 3)) if self.aux_branch else None
            maps = self._head(_product([g3, g4, g5]))
        logits = maps.mean(dim=(2, 3)) if self.head == "cam" else None
        return MFFNetOutput(maps, logits, aux_logits)


def build_mffnet_cam(
    *,
    backbone: str = "efficientnet_lite0",
    num_classes: int,
    weights: WeightsArg | Literal["default"] = "default",
    aux_branch: bool = True,
    hidden_channels: int = HIDDEN_CHANNELS,
) -> MFFNet:
    """MFF-Net CAM network with `num_classes` ReLU'd class maps at stride 8.

    Args:
        backbone: a `build_backbone` name.
        num_classes: K.
        weights: backbone weights, as for `build_backbone`.
        aux_branch: return the deep-only logits used by `cam_distillation_loss` (CUB recipe).
        hidden_channels: D.
    """
    return MFFNet(
        build_backbone(backbone, weights=weights),
        num_classes,
        head="cam",
        aux_branch=aux_branch,
        hidden_channels=hidden_channels,
    )


def build_mffnet_seg(
    *,
    backbone: str = "efficientnet_lite0",
    weights: WeightsArg | Literal["default"] = "default",
    hidden_channels: int = HIDDEN_CHANNELS,
) -> MFFNet:
    """Class-agnostic MFF-Net segmentation network: B x 1 x H/8 x W/8 object logits."""
    return MFFNet(build_backbone(backbone, weights=weights), 1, head="seg", hidden_channels=hidden_channels)


def cam_distillation_loss(output: MFFNetOutput, target: Tensor) -> Tensor:
    """The CAM network's training loss (CUB recipe), a scalar.

    ``L = (CE(p_1, y) + H(softmax(p_1).detach(), log_softmax(p_2))) / 2`` with ``p_1`` the
    deep-only logits, ``p_2`` the fused logits and ``H(q, log p) = -mean_b sum_k q_k log p_k``.
    Without a deep branch (``aux_logits`` None: ImageNet recipe) it is ``CE(p_2, y)``.

    Args:
        output: a CAM network's output (`logits` set).
        target: B int64 class indices.
    """
    if output.logits is None:
        raise ValueError("cam_distillation_loss needs class logits; this output comes from a segmentation network")
    if output.aux_logits is None:
        return cross_entropy(output.logits, target)
    supervised = cross_entropy(output.aux_logits, target)
    teacher = torch.softmax(output.aux_logits.detach(), dim=1)
    distilled = -(teacher * torch.log_softmax(output.logits, dim=1)).sum(dim=1).mean()
    return (supervised + distilled) / 2


__all__ = [
    "CrossScaleChannelAttention",
    "MFFNet",
    "MFFNetOutput",
    "build_mffnet_cam",
    "build_mffnet_seg",
    "cam_distillation_loss",
    "init_new_layers",
]
