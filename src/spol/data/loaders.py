"""Torch datasets over `ImageRecord`s.

(image tensor, label) for classification and CAM training, (image tensor, label mask) for
segmentation training.

Images are read with `spol.data.images.load_image_rgb` (RGB, as stored, like the boxes; JPEGs for
classification at the reduced scale the transform's resize allows) and go through a
`spol.data.transforms` transform. Label masks are ``H x W`` uint8 arrays at the image's original
size (1 object, 0 background, 255 ignored) and are transformed jointly with the image as a
``tv_tensors.Mask`` (nearest-neighbour resize, so the ignore value survives).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler
from torchvision import tv_tensors

from spol.data.images import load_image_rgb
from spol.data.records import ImageRecord

SampleKey = int | tuple[int, int]
"""What the datasets below take: an index, or ``(index, seed)`` from `SeededShuffle` (augmentation seed)."""


class SeededShuffle(Sampler[tuple[int, int]]):
    """Shuffles ``range(size)`` anew each epoch and gives every sample its own augmentation seed.

    Yields ``(index, seed)``; the datasets below draw a sample's random crop and flip from its
    seed alone. The order and the seeds depend only on `seed` and the epoch, so a run gives the
    same batches and the same augmented images whatever the number of loader processes, and a
    run resumed at an epoch start gives those of an uninterrupted one. ``set_epoch`` is called
    before each epoch's first batch is drawn (`spol.runtime.engine.fit_stage` does).

    Under DDP each process takes its share of the epoch's order (`set_shard`): the order padded
    with its first samples to a multiple of the number of processes, then every ``world_size``-th
    sample from position ``rank``, as torch's DistributedSampler shares its indices.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.rank = 0
        self.world_size = 1

    def set_epoch(self, epoch: int) -> None:
        """Use the order and seeds of `epoch`."""
        self.epoch = epoch

    def set_shard(self, rank: int, world_size: int) -> None:
        """Yield the share of process `rank` of `world_size`."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size); got rank {rank} of {world_size}")
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()
        samples = list(zip(order, seeds, strict=True))
        total = len(self) * self.world_size
        samples = (samples * math.ceil(total / max(self.size, 1)))[:total]
        return iter(samples[self.rank :: self.world_size])


class _RecordDataset(TorchDataset):
    """A dataset of one item per `ImageRecord`, indexed by `SampleKey`, made by a random `transform`."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[..., Any]) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def _record(self, key: SampleKey) -> tuple[ImageRecord, int | None]:
        """The record of `key` and its augmentation seed (None: the global RNG)."""
        index, seed = (key[0], key[1]) if isinstance(key, tuple) else (int(key), None)
        return self.records[index], seed

    def _apply_transform(self, seed: int | None, *inputs: Any) -> Any:
        """``transform(*inputs)``, drawing its random parameters from `seed` when given (global RNG untouched)."""
        if seed is None:
            return self.transform(*inputs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(*inputs)


class ImageLabelDataset(_RecordDataset):
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
        super().__init__(records, transform)
        self.min_size = min_size

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        record, seed = self._record(key)
        image = self._apply_transform(seed, load_image_rgb(record.path, min_size=self.min_size))
        return image, torch.tensor(record.label, dtype=torch.int64)


class ImageMaskDataset(_RecordDataset):
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
        super().__init__(records, transform)
        self.read_mask = read_mask

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        record, seed = self._record(key)
        image = load_image_rgb(record.path)
        mask = np.asarray(self.read_mask(record))
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"label mask of image {record.image_id!r} is {mask.shape[1::-1]} (w, h) but the image is "
                f"{image.size}; regenerate the pseudo masks for this dataset"
            )
        image_t, mask_t = self._apply_transform(seed, image, tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8))))
        return image_t, mask_t.as_subclass(torch.Tensor).to(torch.int64)


__all__ = ["ImageLabelDataset", "ImageMaskDataset", "SampleKey", "SeededShuffle"]
