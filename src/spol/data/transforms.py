"""Image transforms: the one home of normalisation constants and the resize/crop recipes.

Images enter as PIL RGB images; transforms return float tensors ``3 x H x W``,
normalised with the backbone's constants. Training transforms accept an optional
mask (``tv_tensors.Mask``, ``H x W`` uint8) that is cropped and flipped with the image.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

Normalization = Literal["imagenet", "half"]

NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # EfficientNet-Lite (TensorFlow) checkpoints expect [-1, 1] inputs.
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def normalization_of(net: nn.Module) -> str:
    """The `NORMALIZATION` key a spol network was built for: its ``normalization`` attribute."""
    # nn.Module types unknown attributes as tensors or modules; spol's builders set a str.
    return cast(str, net.normalization)


def _normalize(normalization: str) -> v2.Normalize:
    if normalization not in NORMALIZATION:
        raise ValueError(f"normalization must be one of {sorted(NORMALIZATION)}, got {normalization!r}")
    mean, std = NORMALIZATION[normalization]
    return v2.Normalize(mean=list(mean), std=list(std))


def train_transform(*, resize: int, crop: int, normalization: str) -> v2.Compose:
    """Resize to ``resize x resize``, random ``crop`` crop, horizontal flip, normalise.

    Applied to ``image`` or ``(image, mask)``; a ``tv_tensors.Mask`` gets the same geometry
    (nearest-neighbour resize) and is not normalised.
    """
    if crop > resize:
        raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((resize, resize), antialias=True),
            v2.RandomCrop(crop),
            v2.RandomHorizontalFlip(),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            _normalize(normalization),
        ]
    )


def eval_transform(*, resize: int, normalization: str, crop: int | None = None) -> v2.Compose:
    """Resize to ``resize x resize`` (the WSOL protocol: no crop), optionally centre-crop, normalise.

    The resize (bilinear, antialiased) runs on float pixels in [0, 1], not on uint8 ones: the same
    operation as the exported localizer's (`spol.localization.export`), which must give the maps
    `spol localize` gives, and which ONNX has only in float.
    """
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Resize((resize, resize), antialias=True),
    ]
    if crop is not None:
        steps.append(v2.CenterCrop(crop))
    steps.append(_normalize(normalization))
    return v2.Compose(steps)


def denormalize(images: torch.Tensor, normalization: str) -> torch.Tensor:
    """Undo the normalisation of ``B x 3 x H x W`` images, giving values in [0, 1] (clamped)."""
    mean, std = NORMALIZATION[normalization]
    mean_t = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)
