"""Helpers the training stages share: train records, parameter groups, freezing the first layers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from torch import nn

from spol.data import Dataset, ImageRecord
from spol.models.backbone_table import classifier_head_prefixes, stem_and_stage_prefixes

logger = logging.getLogger(__name__)


def train_records(dataset: Dataset) -> list[ImageRecord]:
    """The dataset's "train" split, checked: not empty, labels in ``[0, num_classes)``.

    Raises:
        ValueError: empty train split or a label out of range (naming the image id).
    """
    records = dataset.split("train")
    if not records:
        raise ValueError(
            f"dataset {dataset.root} has no 'train' images (splits: {dataset.splits() or 'none'}); check --format"
        )
    for record in records:
        if not 0 <= record.label < dataset.num_classes:
            raise ValueError(
                f"image {record.image_id!r} has label {record.label}, outside [0, {dataset.num_classes}) "
                f"for the dataset's {dataset.num_classes} classes"
            )
    return records


def require_two_classes(dataset: Dataset) -> None:
    """Refuse a train split whose images are all of one class: a classification loss is then 0 from the start.

    The classifier and the CAM networks learn from what tells classes apart; the pipeline and
    every command that trains them check this before any work.

    Raises:
        ValueError: fewer than 2 classes have train images (naming how many and the usual cause).
    """
    labels = {record.label for record in dataset.split("train")}
    if len(labels) >= 2:
        return
    count = len(labels)
    of = "" if count == dataset.num_classes else f" of its {dataset.num_classes}"
    raise ValueError(
        f"{dataset.root}: the train split has images of {count} class{'' if count == 1 else 'es'}{of}; the CAM "
        "networks learn where objects are from what tells classes apart, so spol needs training images of at least "
        "2 classes (for --format imagefolder, --data is the folder that holds the class folders)"
    )


def _starts_with(prefixes: tuple[str, ...], name: str) -> bool:
    return name.startswith(prefixes)


def _not_starts_with(prefixes: tuple[str, ...], name: str) -> bool:
    return not name.startswith(prefixes)


# Partials of module-level functions, not lambdas: the training system holding them must pickle
# (Lightning's spawn launcher and checkpoint hyper-parameters pickle it).
def backbone_predicate(prefixes: tuple[str, ...] = ("backbone.",)) -> Callable[[str], bool]:
    """Parameter name → True when it belongs to the pretrained backbone (starts with one of `prefixes`)."""
    return partial(_starts_with, prefixes)


def not_head_predicate(backbone: str) -> Callable[[str], bool]:
    """Parameter name → True unless it belongs to the head of the `backbone` classifier (the new layer)."""
    return partial(_not_starts_with, classifier_head_prefixes(backbone))


def freeze_backbone(backbone: nn.Module, blocks: int = 0) -> list[str]:
    """Set ``requires_grad=False`` on the backbone's stem (first conv and BN) and its first `blocks` stages.

    The stem and the stages are named by the backbone's `spol.models.BACKBONES` entry: EfficientNet's
    ``blocks.0``, ``blocks.1``, ... and ResNet's ``layer1``, ``layer2``, ... Only the parameters are
    frozen: in training mode their BNs' running statistics still update. Returns the frozen parameter names.

    Raises:
        ValueError: not a spol feature backbone, no parameter with its stem's names, or fewer than
            `blocks` stages.
    """
    what = type(backbone).__name__
    try:
        stem, stages = stem_and_stage_prefixes(backbone)
    except ValueError as error:
        raise ValueError(f"cannot freeze the stem of {what}: {error}; set freeze_stem=false for this stage") from error
    if blocks > len(stages):
        raise ValueError(f"cannot freeze {blocks} blocks of {what}: it has {len(stages)}")
    prefixes = stem + tuple(stages[:blocks])
    chosen = {name: parameter for name, parameter in backbone.named_parameters() if name.startswith(prefixes)}
    if not any(name.startswith(stem) for name in chosen):  # checked first: an error leaves nothing frozen
        raise ValueError(
            f"cannot freeze the stem of {what}: no parameter starts with {stem}; set freeze_stem=false for this stage"
        )
    for parameter in chosen.values():
        parameter.requires_grad_(False)
    frozen = list(chosen)
    logger.info(
        "froze %d backbone parameters: the stem%s", len(frozen), f" and the first {blocks} blocks" if blocks else ""
    )
    return frozen

