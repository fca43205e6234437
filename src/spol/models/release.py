"""Load the authors' released SPOL checkpoints (github.com/weijun-arc/SPOL) as spol networks.

The release's model (``cub200-cls/model.py``, which despite its folder is the CUB CAM network,
``imagenet-cam/model.py`` and ``cub200-seg/model.py``) holds a ResNet-50 ``bkbone`` with
torchvision's parameter names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``, no ``fc``) and these
1x1 convs / BatchNorms, all convs with biases:

=========================  ============================  ==========================
release                    this package                  role
=========================  ============================  ==========================
``bkbone.*``               ``backbone.*``                ResNet-50 (layer2/3/4 used)
``fc31``, ``bn31``         ``attention.squeeze.0.{0,1}``  ``a_3``: 512 → 128
``fc41``, ``bn41``         ``attention.squeeze.1.{0,1}``  ``a_4``: 1024 → 128
``fc51``, ``bn51``         ``attention.squeeze.2.{0,1}``  ``a_5``: 2048 → 128
``fc32``                   ``attention.excite.0``        gate of ``f_3``: 128 → 512
``fc42``                   ``attention.excite.1``        gate of ``f_4``: 128 → 1024
``fc52``                   ``attention.excite.2``        gate of ``f_5``: 128 → 2048
``linear3``, ``bn3``       ``projections.0.{0,1}``       ``g_3``: 512 → 128
``linear4``, ``bn4``       ``projections.1.{0,1}``       ``g_4``: 1024 → 128
``linear5``, ``bn5``       ``projections.2.{0,1}``       ``g_5``: 2048 → 128
``linear``                 ``classifier``                128 → K (CAM) or 1 (seg)
=========================  ============================  ==========================

The release's eval forward is the MFF-Net forward of `spol.models.mffnet`: ReLU'd class maps for
CAM, raw logits for segmentation, both at stride 8. Its training used apex O2, so weights may be
stored in float16; they are cast to float32 here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from spol.models.backbones import load_state_dict_checked, read_state_dict
from spol.models.mffnet import MFFNet, build_mffnet_cam, build_mffnet_seg

logger = logging.getLogger(__name__)

RELEASE_MODULE_MAP: dict[str, str] = {
    "bkbone": "backbone",
    "fc31": "attention.squeeze.0.0",
    "bn31": "attention.squeeze.0.1",
    "fc41": "attention.squeeze.1.0",
    "bn41": "attention.squeeze.1.1",
    "fc51": "attention.squeeze.2.0",
    "bn51": "attention.squeeze.2.1",
    "fc32": "attention.excite.0",
    "fc42": "attention.excite.1",
    "fc52": "attention.excite.2",
    "linear3": "projections.0.0",
    "bn3": "projections.0.1",
    "linear4": "projections.1.0",
    "bn4": "projections.1.1",
    "linear5": "projections.2.0",
    "bn5": "projections.2.1",
    "linear": "classifier",
}
"""Release module name (the part of a key before the first dot) → `MFFNet` module name."""


def convert_release_state_dict(
    state_dict: Mapping[str, Tensor], *, source: str = "release state dict"
) -> dict[str, Tensor]:
    """Rename a release state dict's keys to `MFFNet`'s and cast floating tensors to float32.

    A ``module.`` prefix (``nn.DataParallel``) is stripped first.

    Raises:
        ValueError: keys whose module is not in `RELEASE_MODULE_MAP`; the message lists them.
    """
    keys = list(state_dict)
    strip = "module." if keys and all(k.startswith("module.") for k in keys) else ""
    converted: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        module, _, rest = key[len(strip) :].partition(".")
        if module not in RELEASE_MODULE_MAP or not rest:
            unknown.append(key)
            continue
        converted[f"{RELEASE_MODULE_MAP[module]}.{rest}"] = value.float() if value.is_floating_point() else value
    if unknown:
        shown = ", ".join(unknown[:12]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 12 else "")
        raise ValueError(
            f"{source} has keys that are not part of the SPOL release model: {shown}; "
            f"expected modules {sorted(RELEASE_MODULE_MAP)}"
        )
    return converted


class ReleaseNetwork(nn.Module):
    """A released SPOL network with the release's call signature: ``forward(x)`` returns one tensor.

    ``forward(x)`` takes B x 3 x H x W ImageNet-normalised images and returns what the release's
    eval-mode ``model(x)`` returns: ``task="cam"``, the B x K x H/8 x W/8 ReLU'd class maps;
    ``task="seg"``, the B x 1 x H/8 x W/8 object logits (no sigmoid).

    Attributes:
        network: the underlying ResNet-50 `MFFNet` (its forward returns `MFFNetOutput`, with the
            class logits of a CAM network); use it with the rest of spol, e.g. `export_model`.
        task: ``"cam"`` or ``"seg"``.
    """

    def __init__(self, network: MFFNet, task: Literal["cam", "seg"]) -> None:
        super().__init__()
        self.network = network
        self.task = task

    @property
    def normalization(self) -> str:
        """Input normalisation: ``"imagenet"`` (the release's albumentations ``Normalize()``)."""
        return self.network.normalization

    def forward(self, x: Tensor) -> Tensor:
        """B x 3 x H x W normalised images → B x K x H/8 x W/8 maps (see the class docstring)."""
        return self.network(x).maps


def from_release(
    path_or_state_dict: str | Path | Mapping[str, Tensor],
    task: Literal["cam", "seg"],
    num_classes: int | None = None,
) -> ReleaseNetwork:
    """Rebuild a released SPOL network on a ResNet-50 `MFFNet` (returned in eval mode, on the CPU).

    The result's eval-mode ``forward(x)`` returns the tensor the release's eval-mode forward
    returns (see `ReleaseNetwork`); ``.network`` is the `MFFNet` itself.

    Args:
        path_or_state_dict: the release file (e.g. ``cub200-seg/out/model-2``) or its state dict
            (keys ``bkbone.*``, ``fc51.*``, ``bn51.*``, ..., ``linear.*``; a ``module.`` prefix is accepted).
        task: ``"cam"`` for a CAM network (``cub200-cls``/``imagenet-cam`` models), ``"seg"`` for
            the class-agnostic segmentation network.
        num_classes: K for ``task="cam"`` (checked against the file); None reads it from the file.
            Ignored for ``task="seg"``, whose head has one output.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, unknown or missing keys, or K that contradicts the file or task.
    """
    if task not in ("cam", "seg"):
        raise ValueError(f"task must be 'cam' or 'seg', not {task!r}")
    if isinstance(path_or_state_dict, Mapping):
        source = "release state dict"
        state_dict = convert_release_state_dict(path_or_state_dict, source=source)
    else:
        source = str(path_or_state_dict)
        raw = read_state_dict(path_or_state_dict, what="SPOL release checkpoint")
        state_dict = convert_release_state_dict(raw, source=source)
    head = state_dict.get("classifier.weight")
    if head is None:
        raise ValueError(f"{source} has no 'linear.weight' (the final 1x1 conv); it is not a SPOL release model")
    file_outputs = int(head.shape[0])
    if task == "seg":
        if file_outputs != 1:
            raise ValueError(
                f"{source}: a segmentation network has 1 output, but the file's final conv has {file_outputs}; "
                "use task='cam' for a CAM network"
            )
        if num_classes not in (None, 1):
            logger.warning("from_release: num_classes=%s ignored for task='seg' (1 class-agnostic output)", num_classes)
        network = build_mffnet_seg(backbone="resnet50", weights=None)
    else:
        if num_classes is not None and num_classes != file_outputs:
            raise ValueError(f"{source} has {file_outputs} classes, not num_classes={num_classes}")
        network = build_mffnet_cam(backbone="resnet50", num_classes=file_outputs, weights=None, aux_branch=False)
    with torch.no_grad():
        load_state_dict_checked(network, state_dict, source=source)
    return ReleaseNetwork(network, task).eval()
