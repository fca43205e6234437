"""Image classifiers that give the class for Top-1 / Top-5 localization accuracy: one builder per backbone family.

The table that names the families, and `build_classifier`, are in `spol.models.backbone_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import timm
import torchvision
from torch import Tensor, nn

from spol.models.backbones import (
    WeightsArg,
    create_timm_model,
    efficientnet_lite0_state_dict,
    load_state_dict_checked,
    resnet50_state_dict,
    timm_model_name,
)
from spol.models.efficientnet_b7 import B7_MODEL_NAME, efficientnet_b7_state_dict, is_efficientnet_b7


@dataclass(frozen=True)
class ClassifierArgs:
    """What `spol.models.build_classifier` asks of a family's classifier builder (see its arguments)."""

    num_classes: int
    weights: WeightsArg | Literal["default"]
    require_head: bool
    dropout: float
    drop_connect: float
    weights_sha256: str | None


def _no_head_for(weights: object, num_classes: int, theirs: object) -> ValueError:
    return ValueError(
        f"weights {weights} have no classification head for {num_classes} classes (theirs: {theirs}); a classifier "
        "used as is (classifier.epochs: 0) needs one: fine-tune it instead (classifier.epochs > 0)"
    )


def _load_classifier_weights(
    model: nn.Module,
    state_dict: dict[str, Tensor],
    weights: object,
    prefix: str | tuple[str, ...],
    *,
    require_head: bool,
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


def _no_bundled_weights(name: str, hint: str) -> ValueError:
    return ValueError(f"classifier {name!r} has no bundled weights: pass {hint}")


def resnet50_classifier(name: str, args: ClassifierArgs, head: tuple[str, ...]) -> nn.Module:
    """Torchvision's ResNet-50 with a `num_classes` ``fc``, from a torchvision-layout file or none."""
    if isinstance(args.weights, str) and args.weights == "default":
        raise _no_bundled_weights(name, "weights=<local torchvision ResNet-50 file> or weights=None")
    model = torchvision.models.resnet50(weights=None, num_classes=args.num_classes)
    if args.weights is not None:
        state_dict = resnet50_state_dict(args.weights, keep_fc=True)
        _load_classifier_weights(model, state_dict, args.weights, head, require_head=args.require_head)
    return model


def efficientnet_lite0_classifier(name: str, args: ClassifierArgs, head: tuple[str, ...]) -> nn.Module:
    """Timm's ``tf_efficientnet_lite0`` with the package's weights (``"default"``), a file's, or none."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=args.num_classes)
    if args.weights is not None:
        state_dict = efficientnet_lite0_state_dict(args.weights)
        _load_classifier_weights(model, state_dict, args.weights, head, require_head=args.require_head)
    return model


def timm_classifier(name: str, args: ClassifierArgs, head: tuple[str, ...]) -> nn.Module:
    """The timm classifier of a ``"timm:<model_name>"`` name; EfficientNet-B7 from a pinned file (`efficientnet_b7`)."""
    model_name = timm_model_name(name)
    regularization = {"drop_rate": args.dropout, "drop_path_rate": args.drop_connect}
    model: Any  # timm's module; its pretrained_cfg is untyped
    if is_efficientnet_b7(model_name):
        model = create_timm_model(B7_MODEL_NAME, None, num_classes=args.num_classes, **regularization)
        if args.weights is not None:
            if isinstance(args.weights, str) and args.weights == "default":
                raise _no_bundled_weights(name, "weights=<local file>")
            state_dict = efficientnet_b7_state_dict(args.weights, sha256=args.weights_sha256)
            _load_classifier_weights(model, state_dict, args.weights, head, require_head=args.require_head)
        return model
    model = create_timm_model(model_name, args.weights, num_classes=args.num_classes, **regularization)
    # timm keeps the file's head only when it has the model's default number of classes.
    if args.require_head and model.pretrained_cfg.get("num_classes") != args.num_classes:
        raise _no_head_for(args.weights, args.num_classes, model.pretrained_cfg.get("num_classes"))
    return model


__all__ = [
    "ClassifierArgs",
    "efficientnet_lite0_classifier",
    "resnet50_classifier",
    "timm_classifier",
]
