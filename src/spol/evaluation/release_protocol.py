"""The numbers exactly as the authors' release computes them (``cub200-seg/test.py``), beside the fair protocol's.

The release's test path differs from the WSOL protocol in ways that move its numbers, so papers'
tables can only be reproduced by following it step by step:

1. the image is decoded by OpenCV and converted to RGB;
2. normalised first (ImageNet mean and std on the 0-255 values, float32), then resized to
   256 x 256 (``cv2.INTER_LINEAR`` on the normalised floats) and centre-cropped to 224 x 224;
3. the ground-truth box is clipped to the image (``x1 <= W - 1``), scaled by ``256 / W`` and
   ``256 / H``, shifted by the crop and clipped to it, in floats (albumentations' ``pascal_voc``
   handling); a box that leaves the crop entirely has no area and the image cannot be scored;
4. the segmentation logits are upsampled to 224 with ``align_corners=True``, then the sigmoid;
5. ``mask = map > threshold`` (a fixed threshold: 0.2 for CUB, 0.8 for ImageNet in the release);
6. the largest contour (``RETR_TREE``) gives the box ``(x, y, x + w, y + h)``;
7. IoU without the +1 of inclusive pixels, ``inter / (union + 1e-12)``, and correct when ``> 0.5``;
8. an image whose mask has no contour is **skipped** (not counted as a failure);
9. Top-1 / Top-5 Loc use the classifier's saved per-image hits (``top1top5.npy``).

`read_release_class_hits` reads ``top1top5.npy`` without running arbitrary pickled code.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from spol.config import TrainerConfig
from spol.data.records import ImageRecord
from spol.data.transforms import NORMALIZATION, normalization_of
from spol.runtime.distributed import all_reduce_sum_named
from spol.runtime.prediction import InferenceSystem, run_inference

RELEASE_RESIZE = 256
RELEASE_CROP = 224
RELEASE_THRESHOLD = 0.2
"""The release's mask threshold on CUB (``cub200-seg/test.py``); ImageNet's is 0.8."""

# What a numpy object array of plain values needs to unpickle; nothing here runs other code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a class-hits file")


def read_release_class_hits(path: str | os.PathLike[str]) -> dict[str, tuple[bool, bool]]:
    """``top1top5.npy`` of the release: ``{image path: (top-1 right, top-5 right)}``.

    The file is ``np.save`` of a dict (a pickled 0-d object array). It is unpickled with only
    numpy's array and scalar constructors allowed, so a crafted file cannot run code.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: not a ``.npy`` file of that structure (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class-hits file {path} does not exist")
    try:
        with path.open("rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f".npy format version {version} is not one numpy writes for such files")
            if dtype != np.dtype(object):
                raise ValueError(f"holds a {dtype} array, not a pickled dict")
            value = _PlainUnpickler(io.BytesIO(file.read())).load()
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, TypeError) as error:
        raise ValueError(f"{path} is not a release top1top5.npy: {error}") from error
    value = value.item() if isinstance(value, np.ndarray) and value.shape == () else value
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not a release top1top5.npy: expected a dict, found {type(value).__name__}")
    hits = {}
    for name, entry in value.items():
        if not isinstance(name, str) or len(entry) != 2:
            raise ValueError(f"{path}: entry {name!r} is not 'image path -> [top1, top5]'")
        top1, top5 = (bool(v) for v in entry)
        hits[name] = (top1, top5)
    return hits


def class_hits_for(records: Sequence[ImageRecord], hits: Mapping[str, tuple[bool, bool]], source: str) -> np.ndarray:
    """Top-1 and top-5 rightness per record, bool ``[N, 2]``, looked up by image id (or its file name).

    Raises:
        ValueError: a record has no entry (names it and the file).
    """
    by_name: dict[str, tuple[bool, bool]] = {}
    for name, value in hits.items():
        by_name.setdefault(Path(name).name, value)
    out = np.zeros((len(records), 2), dtype=bool)
    for i, record in enumerate(records):
        found = hits.get(record.image_id) or by_name.get(Path(record.image_id).name)
        if found is None:
            raise ValueError(f"{source} has no entry for image {record.image_id}")
        out[i] = found
    return out


def release_box(box: Sequence[float], size: tuple[int, int]) -> list[float] | None:
    """A ground-truth box through the release's clip, resize to 256 and centre crop to 224 (floats).

    None when nothing of it is left in the crop (the release cannot score such an image).
    """
    width, height = size
    x0, y0, x1, y1 = max(box[0], 0.0), max(box[1], 0.0), min(box[2], width - 1.0), min(box[3], height - 1.0)
    offset = (RELEASE_RESIZE - RELEASE_CROP) // 2
    # albumentations: normalised by the original size, denormalised at 256, shifted and clipped to the crop.
    scaled = [
        x0 / width * RELEASE_RESIZE,
        y0 / height * RELEASE_RESIZE,
        x1 / width * RELEASE_RESIZE,
        y1 / height * RELEASE_RESIZE,
    ]
    moved = [min(max((v - offset) / RELEASE_CROP, 0.0), 1.0) * RELEASE_CROP for v in scaled]
    if moved[2] <= moved[0] or moved[3] <= moved[1]:
        return None
    return moved


def release_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """The release's IoU (``utils/tools.py``): continuous areas, no +1, ``inter / (union + 1e-12)``."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / (union + 1e-12)


class _ReleaseImages(Dataset):
    """``(index, 3 x 224 x 224 float32 input)``: OpenCV decoding, normalise, resize 256, centre crop 224."""

    def __init__(self, records: Sequence[ImageRecord], normalization: str) -> None:
        self.records = list(records)
        mean, std = NORMALIZATION[normalization]
        self.mean = np.array(mean, dtype=np.float32) * 255.0
        self.inverse_std = np.reciprocal(np.array(std, dtype=np.float32) * 255.0, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, Tensor]:
        path = self.records[index].path
        bgr = cv2.imread(os.fspath(path))
        if bgr is None:
            raise ValueError(f"OpenCV cannot decode {path}")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        image -= self.mean
        image *= self.inverse_std
        resized = cv2.resize(image, (RELEASE_RESIZE, RELEASE_RESIZE), interpolation=cv2.INTER_LINEAR)
        offset = (RELEASE_RESIZE - RELEASE_CROP) // 2
        crop = resized[offset : offset + RELEASE_CROP, offset : offset + RELEASE_CROP]
        return index, torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))


class _ReleaseMaps(InferenceSystem):
    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        output = self.segmenter(batch[1])
        logits = output if isinstance(output, Tensor) else output.maps
        upsampled = F.interpolate(
            logits.float(), size=(RELEASE_CROP, RELEASE_CROP), mode="bilinear", align_corners=True
        )
        return torch.sigmoid(upsampled)[:, 0]


@dataclass
class ReleaseProtocolResult:
    """The release's counts: ``num_images`` scored (a contour found), ``num_skipped`` (no contour, or no box left).

    ``loc_hits``: scored images whose box has the release's IoU > 0.5; ``top1_hits`` / ``top5_hits``:
    those whose class is also right (the release's saved per-image hits).
    """

    num_images: int
    num_skipped: int
    loc_hits: int
    top1_hits: int
    top5_hits: int

    def to_json(self) -> dict[str, float | int | None]:
        """``{"num_images", "num_skipped", "top1_loc", "top5_loc", "gt_known_loc"}``, Loc in % of the scored images."""
        n = self.num_images

        def percent(hits: int) -> float | None:
            return 100.0 * hits / n if n else None

        return {
            "num_images": n,
            "num_skipped": self.num_skipped,
            "top1_loc": percent(self.top1_hits),
            "top5_loc": percent(self.top5_hits),
            "gt_known_loc": percent(self.loc_hits),
        }


def evaluate_release_protocol(
    segmenter: nn.Module,
    records: Sequence[ImageRecord],
    class_hits: np.ndarray,
    *,
    threshold: float = RELEASE_THRESHOLD,
    trainer: TrainerConfig | None = None,
    num_workers: int = 0,
    batch_size: int = 32,
    progress: bool = True,
) -> ReleaseProtocolResult:
    """Score `segmenter` on `records` exactly as the release's ``cub200-seg/test.py`` (module docstring).

    Args:
        segmenter: segmentation network (``B x 1 x h x w`` logits, or an output with ``.maps``)
            with a ``normalization`` attribute.
        records: test images with their (first) ground-truth box and ``size``.
        class_hits: bool ``[N, 2]``, top-1 / top-5 right per record (`class_hits_for`).
        threshold: the fixed mask threshold.
        trainer: devices and precision (None: one CPU process).
        num_workers: DataLoader worker processes (0: load in this process).
        batch_size: images per forward pass.
        progress: show a progress bar.
    """
    counts = {field.name: np.zeros((), dtype=np.int64) for field in fields(ReleaseProtocolResult)}

    def consume(maps: Tensor, batch: tuple[Tensor, Tensor]) -> None:
        for index, scoremap in zip(batch[0].tolist(), maps.float().cpu().numpy(), strict=True):
            record = records[index]
            box = release_box(record.boxes[0], record.size) if record.boxes and record.size else None
            mask = np.uint8(scoremap > threshold) * 255
            contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if box is None or len(contours) == 0:
                counts["num_skipped"] += 1
                continue
            x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
            counts["num_images"] += 1
            if release_iou([x, y, x + w, y + h], box) > 0.5:
                counts["loc_hits"] += 1
                counts["top1_hits"] += bool(class_hits[index, 0])
                counts["top5_hits"] += bool(class_hits[index, 1])

    run_inference(
        _ReleaseMaps(segmenter),
        _ReleaseImages(records, normalization_of(segmenter)),
        trainer=trainer or TrainerConfig(accelerator="cpu", devices=1),
        num_workers=num_workers,
        batch_size=batch_size,
        consume=consume,
        progress=progress,
        description="release protocol",
    )
    return ReleaseProtocolResult(**{name: int(value) for name, value in all_reduce_sum_named(counts).items()})


__all__ = [
    "RELEASE_THRESHOLD",
    "ReleaseProtocolResult",
    "class_hits_for",
    "evaluate_release_protocol",
    "read_release_class_hits",
    "release_box",
    "release_iou",
]
