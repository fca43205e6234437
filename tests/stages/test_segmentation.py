"""The segmentation stage: the ignore-aware pixel loss, joint augmentation, and training on pseudo masks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spol.config import Recipe
from spol.data import Dataset, ImageRecord
from spol.data.loaders import ImageMaskDataset
from spol.data.transforms import train_transform
from spol.models import MFFNet, load_exported_model
from spol.stages import train_seg
from spol.stages.pseudo_masks import IGNORE_INDEX, pseudo_mask_path, write_pseudo_mask
from spol.stages.segmentation import fit_segmentation, masked_bce_loss


def test_masked_bce_loss_is_log2_on_valid_pixels_and_ignores_255() -> None:
    labels = torch.tensor([[[1, 0], [IGNORE_INDEX, IGNORE_INDEX]]])
    zero = torch.zeros(1, 1, 2, 2, requires_grad=True)
    loss = masked_bce_loss(zero, labels)
    # Two valid pixels of four, each log(2); the mean runs over all four pixels.
    assert loss.item() == pytest.approx(2 * math.log(2) / 4)
    loss.backward()
    assert zero.grad[0, 0, 1].abs().sum() == 0 and zero.grad[0, 0, 0].abs().sum() > 0
    # Any logits on ignored pixels give the same loss.
    other = torch.tensor([[[[0.0, 0.0], [9.0, -9.0]]]])
    assert masked_bce_loss(other, labels).item() == pytest.approx(loss.item())
    # Confident correct logits give a loss near 0; logits are upsampled to the label size.
    good = torch.tensor([[[[20.0]]]])
    assert masked_bce_loss(good, torch.ones(1, 4, 4, dtype=torch.int64)).item() < 1e-6


def test_ignore_label_survives_the_joint_transform(tiny_dataset: Dataset) -> None:
    record = tiny_dataset.records[0]
    label = np.zeros((64, 64), np.uint8)
    label[:, 20:40] = IGNORE_INDEX
    label[:, 40:] = 1
    dataset = ImageMaskDataset([record], lambda r: label, train_transform(resize=48, crop=40, normalization="imagenet"))
    torch.manual_seed(0)
    for _ in range(5):
        image, mask = dataset[0]
        assert image.shape == (3, 40, 40) and mask.shape == (40, 40) and mask.dtype == torch.int64
        assert set(mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
        assert (mask == IGNORE_INDEX).sum() > 0


def test_label_of_the_wrong_size_is_an_error(tiny_dataset: Dataset) -> None:
    dataset = ImageMaskDataset(
        tiny_dataset.records[:1],
        lambda r: np.zeros((10, 10), np.uint8),
        train_transform(resize=48, crop=40, normalization="half"),
    )
    with pytest.raises(ValueError, match="img0.png"):
        dataset[0]


def _write_pseudo_masks(records: list[ImageRecord], out_dir: Path) -> None:
    # P high on the record's box, G a softer halo: foreground on the box, ignored halo, background elsewhere.
    for record in records:
        p = np.zeros((64, 64), np.float32)
        g = np.zeros((64, 64), np.float32)
        x0, y0, x1, y1 = (int(v) for v in record.boxes[0])
        g[max(y0 - 4, 0) : y1 + 4, max(x0 - 4, 0) : x1 + 4] = 0.1
        p[y0:y1, x0:x1] = 0.9
        write_pseudo_mask(pseudo_mask_path(out_dir, record.image_id), p, g)


def test_train_seg_on_pseudo_masks(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    masks = tmp_path / "pseudo"
    _write_pseudo_masks(tiny_dataset.records, masks)
    run = tmp_path / "seg"
    model_path = train_seg(tiny_recipe, tiny_dataset, masks, run)
    assert model_path == run / "model.pt"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
    model = load_exported_model(model_path)
    assert isinstance(model, MFFNet) and model.head == "seg"
    assert model(torch.zeros(1, 3, 64, 64)).maps.shape == (1, 1, 8, 8)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[-1].startswith("epoch,0,2,")
    assert train_seg(tiny_recipe, tiny_dataset, masks, run) == model_path  # skipped


def test_train_seg_reports_missing_pseudo_masks(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    masks = tmp_path / "pseudo"
    _write_pseudo_masks(tiny_dataset.records[1:], masks)
    with pytest.raises(FileNotFoundError, match="1 of 8 train images have no pseudo mask.*img0.png"):
        train_seg(tiny_recipe, tiny_dataset, masks, tmp_path / "seg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_seg(tiny_recipe, tiny_dataset, tmp_path / "nowhere", tmp_path / "seg")


@pytest.mark.slow
def test_segmentation_loss_falls_on_a_learnable_labelling(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    # Every valid pixel is object (a flip- and crop-invariant target): the loss must fall and the accuracy rise.
    # At a constant rate: a one-cycle schedule (the cpu recipe's) warms up over the first epoch of so short a run.
    # Two steps an epoch are noisy, so the first epoch is compared with the last, not each with the next.
    label = np.ones((64, 64), np.uint8)
    label[:, :16] = IGNORE_INDEX
    constant = {"epochs": 4, "optimizer": "sgd", "lr": 0.02, "backbone_lr_mult": 1.0, "schedule": "constant"}
    recipe = tiny_recipe.model_copy(update={"seg": tiny_recipe.seg.model_copy(update=constant)})
    run = tmp_path / "seg"
    fit_segmentation(recipe, tiny_dataset.records, lambda r: label, run)
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:] if line.startswith("epoch")]
    losses, accuracies = [float(row[3]) for row in rows], [float(row[4]) for row in rows]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0] and accuracies[-1] > accuracies[0] + 0.2
