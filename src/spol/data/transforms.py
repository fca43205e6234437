"""Image transforms: the one home of normalisation constants and the resize/crop recipes.

Images enter as PIL RGB images; transforms return float tensors ``3 x H x W``. Training
transforms normalise with the backbone's constants and accept an optional mask
(``tv_tensors.Mask``, ``H x W`` uint8) that is cropped and flipped with the image. Test-time
transforms (`eval_transform`, `EvalInputs`) give [0, 1] pixels: the predictor that runs the
networks normalises them (`spol.models.Predictor`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # EfficientNet-Lite (TensorFlow) checkpoints expect [-1, 1] inputs.
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def normalization_of(net: nn.Module, *, role: str = "network") -> str:
    """The `NORMALIZATION` key a spol network was built for: its ``normalization`` attribute.

    Raises:
        ValueError: the attribute is missing or unknown; the message names the network's `role`.
    """
    normalization = getattr(net, "normalization", None)
    if normalization not in NORMALIZATION:
        raise ValueError(
            f"the {role} has no `normalization` attribute ({' or '.join(map(repr, NORMALIZATION))}); "
            "build it with a spol.models builder"
        )
    return str(normalization)


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


def eval_transform(*, resize: int, crop: int | None = None) -> v2.Compose:
    """Resize to ``resize x resize`` (the WSOL protocol: no crop), optionally centre-crop: float32 in [0, 1].

    Not normalised: `spol.models.Predictor` normalises on the device. The resize (bilinear,
    antialiased) runs on float pixels in [0, 1], not on uint8 ones: the same operation as the
    exported localizer's (`spol.localization.export`), which must give the maps `spol localize`
    gives, and which ONNX has only in float.
    """
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Resize((resize, resize), antialias=True),
    ]
    if crop is not None:
        steps.append(v2.CenterCrop(crop))
    return v2.Compose(steps)


class EvalInputs:
    """A PIL RGB image → one `eval_transform` tensor per size: ``3 x S x S`` float32 in [0, 1] for each S."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(sizes)
        self._transforms = [eval_transform(resize=size) for size in self.sizes]

    def __call__(self, image: object) -> list[torch.Tensor]:
        return [transform(image) for transform in self._transforms]
