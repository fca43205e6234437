"""Batched score maps and class scores for evaluation, at the protocol resolution.

The WSOL protocol evaluates a map per image at 224 x 224, the image resized (not cropped)
before the network. The network may run at another input size (a recipe setting); its
maps are upsampled bilinearly to the protocol size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from spol.data import ImageRecord, load_image_rgb
from spol.data.transforms import eval_transform
from spol.scoremaps import PROTOCOL_SIZE, ScoreMapError

TOP_K = 5


class _EvalImages(Dataset):
    """Records as normalised tensors resized (no crop) to `input_size`."""

    def __init__(self, records: Sequence[ImageRecord], input_size: int, normalization: str) -> None:
        self.records = list(records)
        self.transform = eval_transform(resize=input_size, normalization=normalization)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        record = self.records[index]
        return self.transform(load_image_rgb(record.path)), record.label


@dataclass
class Predictions:
    """What one network says about a list of records, in record order.

    Attributes:
        scoremaps: N x 224 x 224 float32 maps in [0, 1] (None when the network makes none).
        top5: N x 5 int class indices, best first (None for a class-agnostic network).
        cls_correct: N bool, top-1 class equals the label (None likewise).
    """

    scoremaps: np.ndarray | None
    top5: np.ndarray | None
    cls_correct: np.ndarray | None


def _logits_of(output: object) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    return getattr(output, "logits", None)


def _to_protocol_size(maps: Tensor) -> Tensor:
    return F.interpolate(maps, size=(PROTOCOL_SIZE, PROTOCOL_SIZE), mode="bilinear", align_corners=False)


def _cam_scoremaps(maps: Tensor, labels: Tensor) -> np.ndarray:
    """Ground-truth-class CAMs at the protocol size, min-max normalised per image (as wsolevaluation)."""
    picked = maps[torch.arange(len(labels)), labels].unsqueeze(1).float()
    picked = _to_protocol_size(picked).squeeze(1)
    if torch.isnan(picked).any():
        raise ScoreMapError("the CAM network produced NaN maps; check the model file and the input images")
    low = picked.amin(dim=(1, 2), keepdim=True)
    high = picked.amax(dim=(1, 2), keepdim=True)
    span = high - low
    normalised = torch.where(span > 0, (picked - low) / span.clamp_min(1e-12), torch.zeros_like(picked))
    return normalised.clamp_(0, 1).cpu().numpy()


def _seg_scoremaps(maps: Tensor) -> np.ndarray:
    """Object probabilities (sigmoid of upsampled logits) at the protocol size."""
    probs = torch.sigmoid(_to_protocol_size(maps.float())).squeeze(1)
    if torch.isnan(probs).any():
        raise ScoreMapError("the segmentation network produced NaN maps; check the model file and the input images")
    return probs.cpu().numpy()


@torch.inference_mode()
def predict(
    model: nn.Module,
    records: Sequence[ImageRecord],
    *,
    kind: str,
    input_size: int,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    description: str | None = None,
) -> Predictions:
    """Run `model` over `records` and collect score maps and/or class predictions.

    Args:
        model: a CAM network (``kind="cam"``: MFFNetOutput with class maps and logits), a
            segmentation network (``"seg"``: 1-channel logits maps) or a classifier
            (``"classifier"``: logits or an output with ``.logits``). Needs ``.normalization``.
        records: images with labels.
        kind: ``"cam"``, ``"seg"`` or ``"classifier"``.
        input_size: the square side the images are resized to (no crop).
    """
    if kind not in ("cam", "seg", "classifier"):
        raise ValueError(f"kind must be 'cam', 'seg' or 'classifier', not {kind!r}")
    model = model.eval().to(device)
    loader = DataLoader(
        _EvalImages(records, input_size, model.normalization),
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
    )
    maps_out: list[np.ndarray] = []
    top5_out: list[np.ndarray] = []
    for images, labels in tqdm(loader, desc=description or f"{kind} inference", unit="batch", leave=False):
        output = model(images.to(device))
        if kind == "seg":
            maps_out.append(_seg_scoremaps(output.maps))
            continue
        logits = _logits_of(output)
        if logits is None:
            raise ValueError(f"a {kind} model must return class logits")
        k = min(TOP_K, logits.shape[1])
        top5_out.append(logits.float().topk(k, dim=1).indices.cpu().numpy())
        if kind == "cam":
            maps_out.append(_cam_scoremaps(output.maps, labels.to(device)))
    labels_all = np.array([r.label for r in records], dtype=np.int64)
    top5 = np.concatenate(top5_out) if top5_out else None
    return Predictions(
        scoremaps=np.concatenate(maps_out) if maps_out else None,
        top5=top5,
        cls_correct=(top5[:, 0] == labels_all) if top5 is not None else None,
    )
