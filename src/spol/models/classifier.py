"""Image classifiers that give the class for Top-1 / Top-5 localization accuracy."""

from __future__ import annotations

from typing import Any, Literal

import timm
import torchvision
from torch import Tensor, nn

from spol.models.backbones import (
    HALF_NORMALIZATION,
    IMAGENET_NORMALIZATION,
    WeightsArg,
    create_timm_model,
    efficientnet_lite0_state_dict,
    load_state_dict_checked,
    resnet50_state_dict,
    timm_model_name,
    timm_normalization,
)
from spol.models.efficientnet_b7 import B7_MODEL_NAME, efficientnet_b7_state_dict, is_efficientnet_b7

_HEADS = {"resnet50": "fc.", "efficientnet_lite0": "classifier."}


def _no_head_for(weights: object, num_classes: int, theirs: object) -> ValueError:
    return ValueError(
        f"weights {weights} have no classification head for {num_classes} classes (theirs: {theirs}); a classifier "
        "used as is (classifier.epochs: 0) needs one: fine-tune it instead (classifier.epochs > 0)"
    )


def _load_classifier_weights(
    model: nn.Module, state_dict: dict[str, Tensor], weights: object, prefix: str, *, require_head: bool
) -> None:
    """Load a classifier's weights.

    A head for another number of classes (or none) is replaced by the model's fresh one, or refused
    with `require_head`.
    """
    expected = model.state_dict()
    head = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not (head and all(k in expected and expected[k].shape == v.shape for k, v in head.items())):
        if require_head:
            theirs = int(next(iter(head.values())).shape[0]) if head else "none"
            num_classes = int(next(v for k, v in expected.items() if k.startswith(prefix)).shape[0])
            raise _no_head_for(weights, num_classes, theirs)
        fresh_head = {k: v for k, v in expected.items() if k.startswith(prefix)}
        state_dict = {**{k: v for k, v in state_dict.items() if not k.startswith(prefix)}, **fresh_head}
    load_state_dict_checked(model, state_dict, source=str(weights))


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
        weights: as for `spol.models.build_backbone` (``"default"`` is only available for
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
    if backbone == "resnet50":
        if isinstance(weights, str) and weights == "default":
            raise ValueError(
                "classifier 'resnet50' has no bundled weights: pass weights=<local torchvision ResNet-50 file> "
                "or weights=None"
            )
        # Any: torchvision's or timm's module, given a `normalization` attribute below.
        model: Any = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        if weights is not None:
            state_dict = resnet50_state_dict(weights, keep_fc=True)
            _load_classifier_weights(model, state_dict, weights, _HEADS[backbone], require_head=require_head)
        model.normalization = IMAGENET_NORMALIZATION
        return model
    if backbone == "efficientnet_lite0":
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
        if weights is not None:
            state_dict = efficientnet_lite0_state_dict(weights)
            _load_classifier_weights(model, state_dict, weights, _HEADS[backbone], require_head=require_head)
        model.normalization = HALF_NORMALIZATION
        return model
    if backbone.startswith("timm:"):
        model_name = timm_model_name(backbone)
        regularization = {"drop_rate": dropout, "drop_path_rate": drop_connect}
        if is_efficientnet_b7(model_name):
            model = create_timm_model(B7_MODEL_NAME, None, num_classes=num_classes, **regularization)
            if weights is not None:
                if isinstance(weights, str) and weights == "default":
                    raise ValueError(f"classifier {backbone!r} has no bundled weights: pass weights=<local file>")
                state_dict = efficientnet_b7_state_dict(weights, sha256=weights_sha256)
                _load_classifier_weights(model, state_dict, weights, "classifier.", require_head=require_head)
            model.normalization = timm_normalization(model.pretrained_cfg, B7_MODEL_NAME)
            return model
        model = create_timm_model(model_name, weights, num_classes=num_classes, **regularization)
        # timm keeps the file's head only when it has the model's default number of classes.
        if require_head and model.pretrained_cfg.get("num_classes") != num_classes:
            raise _no_head_for(weights, num_classes, model.pretrained_cfg.get("num_classes"))
        model.normalization = timm_normalization(model.pretrained_cfg, model_name)
        return model
    raise ValueError(
        f"unknown classifier backbone {backbone!r}; choose 'resnet50', 'efficientnet_lite0' or 'timm:<model_name>'"
    )
