"""Helpers the training stages share: train records, parameter groups, stem freezing."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from spol.data import Dataset, ImageRecord

# Parameter-name prefixes of a backbone's stem (first conv + BN): torchvision ResNet-50 and timm
# EfficientNets as wrapped by spol.models.build_backbone.
_STEM_PREFIXES = ("conv1.", "bn1.", "body.conv_stem.", "body.bn1.")


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


def backbone_predicate(prefixes: tuple[str, ...] = ("backbone.",)) -> Callable[[str], bool]:
    """Parameter name → True when it belongs to the pretrained backbone (starts with one of `prefixes`)."""
    return lambda name: name.startswith(prefixes)


def not_head_predicate(head_prefixes: tuple[str, ...]) -> Callable[[str], bool]:
    """Parameter name → True unless it belongs to the new classification head."""
    return lambda name: not name.startswith(head_prefixes)


def freeze_stem(backbone: nn.Module) -> list[str]:
    """Set ``requires_grad=False`` on the backbone's first conv and BN; returns the frozen names.

    Only the parameters are frozen: in training mode the stem BN's running statistics still update.

    Raises:
        ValueError: the backbone has no parameter with a known stem name.
    """
    frozen = []
    for name, parameter in backbone.named_parameters():
        if name.startswith(_STEM_PREFIXES):
            parameter.requires_grad_(False)
            frozen.append(name)
    if not frozen:
        raise ValueError(
            f"cannot freeze the stem of {type(backbone).__name__}: no parameter starts with {_STEM_PREFIXES}; "
            "set cam.freeze_stem=false"
        )
    return frozen
