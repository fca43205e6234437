"""Training datasets and their sampler: the same batches whatever the number of loader processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from spol.data.loaders import ImageLabelDataset, ImageMaskDataset, SeededShuffle
from spol.data.records import ImageRecord
from spol.data.transforms import train_transform


def _records(tmp_path: Path, count: int = 12) -> list[ImageRecord]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(f"{i}.png", path, i % 3, "train", size=(48, 40)))
    return records


def test_the_shuffle_depends_on_seed_and_epoch_only():
    sampler = SeededShuffle(10, seed=3)
    first = list(sampler)
    assert sorted(index for index, _ in first) == list(range(10))
    assert list(SeededShuffle(10, seed=3)) == first  # a fresh sampler, the same epoch 0
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) != sorted(first)  # new order, new seeds
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(SeededShuffle(10, seed=4)) != first


def test_a_sample_seed_fixes_the_augmentation_and_leaves_the_global_generator_alone(tmp_path):
    records = _records(tmp_path, 2)
    dataset = ImageLabelDataset(records, train_transform(resize=32, crop=20, normalization="imagenet"))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, _ = dataset[(1, 12345)]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)
    b, _ = dataset[(1, 12345)]
    assert torch.equal(a, b)
    crops = {dataset[(1, seed)][0].sum().item() for seed in range(20)}
    assert len(crops) > 1  # other seeds, other crops
    masks = ImageMaskDataset(
        records,
        lambda record: np.ones((40, 48), np.uint8),
        train_transform(resize=32, crop=20, normalization="imagenet"),
    )
    image, mask = masks[(0, 7)]
    assert torch.equal(image, masks[(0, 7)][0]) and mask.shape == (20, 20)


def test_the_shares_of_the_processes_are_the_epochs_order_padded_and_dealt_out():
    whole = SeededShuffle(10, seed=3)
    whole.set_epoch(1)
    shares = []
    for rank in range(4):
        sampler = SeededShuffle(10, seed=3)
        sampler.set_epoch(1)
        sampler.set_shard(rank, 4)
        shares.append(list(sampler))
        assert len(sampler) == 3
    order = list(whole)
    padded = order + order[:2]  # 12 = 4 x 3: the first two again, as torch's DistributedSampler pads
    assert shares == [padded[rank::4] for rank in range(4)]
    with pytest.raises(ValueError, match="rank"):
        whole.set_shard(4, 4)


def test_loader_processes_do_not_change_the_batches(tmp_path):
    dataset = ImageLabelDataset(_records(tmp_path), train_transform(resize=32, crop=20, normalization="imagenet"))

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = SeededShuffle(len(dataset), seed=0)
        sampler.set_epoch(2)
        loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=workers)
        return [images for images, _ in loader]

    in_process, two_workers = batches(0), batches(2)
    assert len(in_process) == 3
    for a, b in zip(in_process, two_workers, strict=True):
        assert torch.equal(a, b)
