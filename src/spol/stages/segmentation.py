"""Training the class-agnostic segmentation network (MFF-Net #2) on pseudo masks.

Labels: the CAM stage's pseudo masks ``(P, G)`` double-thresholded into 1 (object), 0
(background) and 255 (conflict region, ignored). Loss: per-pixel binary cross-entropy with logits
on the prediction upsampled bilinearly to the crop size, weight 1 on object and background
pixels and 0 on ignored ones, averaged over all pixels (``F.binary_cross_entropy_with_logits``
with a weight map, as the release). Augmentation: the CAM stage's, applied jointly to image and
label (nearest-neighbour resize, so 255 survives; the crop never pads because crop <= resize).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spol.config import Recipe, StageOptimConfig
from spol.data import Dataset, ImageRecord
from spol.data.loaders import ImageMaskDataset
from spol.data.transforms import normalization_of, train_transform
from spol.models import build_mffnet_seg, export_model
from spol.models.layers import resize_bilinear
from spol.rundir import read_record
from spol.runtime.engine import fit_stage, seed_everything
from spol.runtime.stage_folder import finished_model, stage_inputs
from spol.runtime.system import TrainingSystem
from spol.stages.parameters import backbone_predicate, freeze_backbone, train_records
from spol.stages.pseudo_masks import (
    IGNORE_INDEX,
    SOURCE_NAME,
    double_threshold,
    pseudo_mask_path,
    read_pseudo_mask,
)

logger = logging.getLogger(__name__)


def masked_bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Pixel BCE with logits, ignoring label 255, averaged over all pixels.

    Args:
        logits: B x 1 x h x w object logits; upsampled bilinearly to the labels' size.
        labels: B x H x W integers in {0, 1, 255}.
    """
    logits = resize_bilinear(logits, labels.shape[-2:], align_corners=False)[:, 0]
    weight = (labels != IGNORE_INDEX).to(logits.dtype)
    target = (labels == 1).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


class SegmentationSystem(TrainingSystem):
    """Lightning system of the segmentation MFF-Net: images B x 3 x H x W, labels B x H x W in {0, 1, 255}.

    Logs the loss and the pixel accuracy on non-ignored pixels (logit > 0 is object).
    """

    def __init__(self, net: nn.Module, optim: StageOptimConfig) -> None:
        super().__init__(net, optim, backbone_predicate())

    def compute_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self.net(images).maps
        loss = masked_bce_loss(logits, labels)
        with torch.no_grad():
            up = resize_bilinear(logits, labels.shape[-2:], align_corners=False)[:, 0]
            valid = labels != IGNORE_INDEX
            correct = ((up > 0) == (labels == 1)) & valid
            accuracy = correct.sum() / valid.sum().clamp(min=1)
        return loss, accuracy.float()


class PseudoLabelReader:
    """Record → ``H x W`` uint8 labels (1/0/255) from its pseudo mask in `pseudo_mask_dir` (picklable for workers)."""

    def __init__(self, pseudo_mask_dir: Path, *, foreground: float, background: float) -> None:
        self.pseudo_mask_dir = Path(pseudo_mask_dir)
        self.foreground = foreground
        self.background = background

    def path(self, record: ImageRecord) -> Path:
        return Path(pseudo_mask_path(self.pseudo_mask_dir, record.image_id))

    def __call__(self, record: ImageRecord) -> np.ndarray:
        foreground_evidence, prior = read_pseudo_mask(self.path(record))
        return double_threshold(foreground_evidence, prior, foreground=self.foreground, background=self.background)


def fit_segmentation(
    recipe: Recipe,
    records: list[ImageRecord],
    read_labels: Callable[[ImageRecord], np.ndarray],
    run_dir: Path,
    *,
    force: bool = False,
    inputs: dict[str, Any] | None = None,
) -> Path:
    """Train the segmentation network on `records` with labels from `read_labels`; returns ``run_dir/model.pt``.

    `read_labels(record)` gives the ``H x W`` uint8 label mask (1 object, 0 background, 255 ignored)
    at the image's original size. `train_seg` calls this with the pseudo-mask reader and the stage's
    `inputs` record (`spol.runtime.stage_folder.stage_inputs`).
    """
    run_dir = Path(run_dir)
    done = finished_model(run_dir, force=force, inputs=inputs)
    if done is not None:
        return done
    seed_everything(recipe.seed)
    kwargs: dict[str, Any] = {"backbone": recipe.backbone}
    net = build_mffnet_seg(**kwargs, weights=recipe.weights)
    if recipe.seg.freeze_stem:
        freeze_backbone(net.backbone, recipe.seg.freeze_blocks)
    transform = train_transform(resize=recipe.data.resize, crop=recipe.data.crop, normalization=normalization_of(net))
    images = ImageMaskDataset(records, read_labels, transform)
    logger.info("training the segmentation network on %d images", len(records))

    def export(model: nn.Module, path: Path) -> None:
        export_model(model, builder="mffnet_seg", kwargs=kwargs, path=path)

    return fit_stage(
        SegmentationSystem(net, recipe.seg),
        images,
        recipe=recipe,
        stage=recipe.seg,
        section_name="seg",
        run_dir=run_dir,
        export=export,
        force=force,
    )


def seg_stage_inputs(recipe: Recipe, dataset: Dataset, pseudo_mask_dir: Path) -> dict[str, Any]:
    """What `train_seg` records in ``inputs.json``: the recipe, the training images and the pseudo masks' source."""
    source = read_record(Path(pseudo_mask_dir) / SOURCE_NAME)
    return stage_inputs(
        recipe, ("pseudo_masks", "seg"), train_records(dataset), root=dataset.root, pseudo_mask_source=source
    )


def train_seg(recipe: Recipe, dataset: Dataset, pseudo_mask_dir: Path, run_dir: Path, *, force: bool = False) -> Path:
    """Train the segmentation network on the "train" split's pseudo masks; returns ``run_dir/model.pt``.

    Args:
        recipe: the effective recipe (``backbone``, ``weights``, ``data``, ``pseudo_masks``
            thresholds, ``seg``, ``trainer``).
        dataset: the images; only the "train" split is used.
        pseudo_mask_dir: the folder `spol.stages.pseudo_masks.generate_pseudo_masks` wrote.
        run_dir: the stage's run folder (see `spol.runtime.engine`).
        force: start over even if the stage finished or has checkpoints.

    Raises:
        FileNotFoundError: `pseudo_mask_dir` is missing or lacks the mask of a train image.
        ValueError: empty train split, a pseudo mask whose size differs from its image, or a
            finished or started stage whose pseudo masks came from another CAM network.
    """
    run_dir = Path(run_dir)
    pseudo_mask_dir = Path(pseudo_mask_dir)
    records = train_records(dataset)
    inputs = seg_stage_inputs(recipe, dataset, pseudo_mask_dir)
    done = finished_model(run_dir, force=force, inputs=inputs)
    if done is not None:
        return done
    if not pseudo_mask_dir.is_dir():
        raise FileNotFoundError(f"pseudo-mask folder {pseudo_mask_dir} does not exist; generate the pseudo masks first")
    reader = PseudoLabelReader(
        pseudo_mask_dir, foreground=recipe.pseudo_masks.foreground, background=recipe.pseudo_masks.background
    )
    missing = [r.image_id for r in records if not reader.path(r).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(records)} train images have no pseudo mask in {pseudo_mask_dir} "
            f"(first: {', '.join(missing[:3])}); generate the pseudo masks for this dataset again"
        )
    return fit_segmentation(recipe, records, reader, run_dir, force=force, inputs=inputs)


__all__ = [
    "PseudoLabelReader",
    "SegmentationSystem",
    "fit_segmentation",
    "masked_bce_loss",
    "seg_stage_inputs",
    "train_seg",
]
