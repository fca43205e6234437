"""Torch datasets over `ImageRecord`s: (image tensor, label) for classification and CAM training,
(image tensor, label mask) for segmentation training.

Images are read with `spol.data.images.load_image_rgb` (RGB, as stored, like the boxes; JPEGs for
classification at the reduced scale the transform's resize allows) and go through a
`spol.data.transforms` transform. Label masks are ``H x W`` uint8 arrays at the image's original
size (1 object, 0 background, 255 ignored) and are transformed jointly with the image as a
``tv_tensors.Mask`` (nearest-neighbour resize, so the ignore value survives).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torchvision import tv_tensors

from spol.data.images import load_image_rgb
from spol.data.records import ImageRecord


class ImageLabelDataset(TorchDataset):
    """``(image, label)`` pairs: image a float tensor 3 x H x W from `transform`, label an int64 scalar tensor.

    Args:
        records: the images.
        transform: PIL image → tensor.
        min_size: the side `transform` resizes to: JPEGs are decoded at a reduced scale no
            smaller than it (`spol.data.images.load_image_rgb`); None decodes every pixel.
    """

    def __init__(
        self, records: Sequence[ImageRecord], transform: Callable[[Any], torch.Tensor], *, min_size: int | None = None
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.min_size = min_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = self.records[index]
        image = self.transform(load_image_rgb(record.path, min_size=self.min_size))
        return image, torch.tensor(record.label, dtype=torch.int64)


class ImageMaskDataset(TorchDataset):
    """``(image, mask)`` pairs for segmentation training.

    Args:
        records: the images.
        read_mask: image record → ``H x W`` uint8 label mask at the image's original size
            (1 object, 0 background, 255 ignored).
        transform: a joint transform called as ``transform(image, tv_tensors.Mask)``, e.g.
            `spol.data.transforms.train_transform`.

    Returns per item: image float tensor 3 x h x w and mask int64 tensor h x w with values {0, 1, 255}.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        read_mask: Callable[[ImageRecord], np.ndarray],
        transform: Callable[..., Any],
    ) -> None:
        self.records = list(records)
        self.read_mask = read_mask
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = self.records[index]
        image = load_image_rgb(record.path)
        mask = np.asarray(self.read_mask(record))
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"label mask of image {record.image_id!r} is {mask.shape[1::-1]} (w, h) but the image is "
                f"{image.size}; regenerate the pseudo masks for this dataset"
            )
        image_t, mask_t = self.transform(image, tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8))))
        return image_t, mask_t.as_subclass(torch.Tensor).to(torch.int64)


__all__ = ["ImageLabelDataset", "ImageMaskDataset"]
