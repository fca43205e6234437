"""Network outputs to score maps on the WSOL protocol's grid: the one place both are computed.

The protocol scores a map per image at 224 x 224, the image resized (not cropped) before the
network. `spol.models.Predictor` makes its maps here, and the evaluation (`spol.pipeline.scoring`),
the report, `spol.Localizer` and the exported localizer all use it, so the box `spol localize`
draws is the box that was scored.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from spol.scoremaps import PROTOCOL_SIZE, ScoreMapError

MapKind = Literal["cam", "seg"]
"""What a map network returns: ``"cam"``, class maps (a CAM network: one map per class, and logits);
``"seg"``, one class-agnostic map of object logits (the segmentation network)."""


def _to_protocol_size(maps: Tensor, align_corners: bool = False) -> Tensor:
    return F.interpolate(maps, size=(PROTOCOL_SIZE, PROTOCOL_SIZE), mode="bilinear", align_corners=align_corners)


def cam_normalized(picked: Tensor) -> Tensor:
    """``B x h x w`` maps min-max normalised per image to [0, 1]; traceable (an all-constant map gives zeros)."""
    low = picked.amin(dim=(1, 2), keepdim=True)
    high = picked.amax(dim=(1, 2), keepdim=True)
    span = high - low
    return torch.where(span > 0, (picked - low) / span.clamp_min(1e-12), torch.zeros_like(picked)).clamp(0, 1)


def class_peak_probability(maps: Tensor, labels: Tensor) -> Tensor:
    """The highest per-location probability of class ``labels[b]``: softmax over the K class maps at each location.

    Args:
        maps: ``B x K x h x w`` class maps (a CAM network's, at its own resolution).
        labels: ``B`` int64 classes.

    Returns:
        ``B`` float32 in [0, 1]: near 1 where some location clearly shows the class, low on blank
        or noise images (no location is confidently any class).
    """
    probabilities = torch.softmax(maps.float(), dim=1)
    index = labels.view(-1, 1, 1, 1).expand(-1, 1, maps.shape[2], maps.shape[3])
    return probabilities.gather(1, index).amax(dim=(1, 2, 3))


def class_maps(maps: Tensor, labels: Tensor) -> Tensor:
    """The map of class ``labels[b]`` of each image b.

    Args:
        maps: ``B x K x h x w`` class maps.
        labels: ``B`` int64 classes.

    Returns:
        ``B x h x w`` float32.
    """
    index = labels.to(maps.device).view(-1, 1, 1, 1).expand(-1, 1, maps.shape[2], maps.shape[3])
    return maps.gather(1, index).squeeze(1).float()


def cam_scoremaps(maps: Tensor, labels: Tensor, *, check: bool = True) -> Tensor:
    """The CAMs of `labels` at the protocol size, min-max normalised per image (as wsolevaluation).

    Args:
        maps: ``B x K x h x w`` class maps.
        labels: ``B`` int64 classes (the ground truth's for the protocol's maps).
        check: raise `ScoreMapError` on NaN maps (False: traceable, for the exported localizer).

    Returns:
        ``B x 224 x 224`` float32 in [0, 1] (an all-constant CAM gives zeros).
    """
    picked = _to_protocol_size(class_maps(maps, labels).unsqueeze(1)).squeeze(1)
    if check and torch.isnan(picked).any():
        raise ScoreMapError("the CAM network produced NaN maps; check the model file and the input images")
    return cam_normalized(picked)


def seg_scoremaps(maps: Tensor, *, align_corners: bool = False, check: bool = True) -> Tensor:
    """Object probabilities at the protocol size: the sigmoid of the ``B x 1 x h x w`` logits upsampled to 224.

    Args:
        maps: the segmentation network's logits.
        align_corners: of the bilinear upsampling (the release's test scripts: True).
        check: raise `ScoreMapError` on NaN maps (False: traceable, for the exported localizer).

    Returns:
        ``B x 224 x 224`` float32 in [0, 1].
    """
    probs = torch.sigmoid(_to_protocol_size(maps.float(), align_corners)).squeeze(1)
    if check and torch.isnan(probs).any():
        raise ScoreMapError("the segmentation network produced NaN maps; check the model file and the input images")
    return probs


__all__ = [
    "MapKind",
    "cam_normalized",
    "cam_scoremaps",
    "class_maps",
    "class_peak_probability",
    "seg_scoremaps",
]
