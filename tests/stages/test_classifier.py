"""The classifier stage fine-tunes a classifier with a new head and exports it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spol.config import Recipe
from spol.data import Dataset
from spol.models import build_classifier, load_exported_model
from spol.models.backbone_table import classifier_head_prefixes
from spol.stages import ClassifierSystem, train_classifier


def test_head_trains_at_lr_and_the_rest_at_the_backbone_rate(tiny_recipe: Recipe) -> None:
    net = build_classifier(backbone="efficientnet_lite0", num_classes=3, weights=None)
    assert classifier_head_prefixes("efficientnet_lite0") == ("classifier.",)
    groups = {g["name"]: g for g in ClassifierSystem(net, tiny_recipe.classifier).parameter_groups()}
    head = dict(net.named_parameters())
    assert groups["new"]["params"] == [head["classifier.weight"], head["classifier.bias"]]
    assert groups["new"]["lr"] == tiny_recipe.classifier.lr
    assert groups["backbone"]["lr"] == tiny_recipe.classifier.lr * tiny_recipe.classifier.backbone_lr_mult
    assert len(groups["backbone"]["params"]) == len(head) - 2
    resnet = build_classifier(backbone="resnet50", num_classes=3, weights=None)
    assert classifier_head_prefixes("resnet50") == ("fc.",) and hasattr(resnet, "fc")
    assert classifier_head_prefixes("timm:tf_efficientnet_b7") == ("classifier.",)


def test_train_classifier_exports_a_classifier(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    run = tmp_path / "classifier"
    model_path = train_classifier(tiny_recipe, tiny_dataset, run)
    model = load_exported_model(model_path)
    assert model(torch.zeros(2, 3, 56, 56)).shape == (2, tiny_dataset.num_classes)
    assert (run / "checkpoints" / "epoch-000.ckpt").is_file()
    mtime = model_path.stat().st_mtime_ns
    assert train_classifier(tiny_recipe, tiny_dataset, run) == model_path
    assert model_path.stat().st_mtime_ns == mtime


def test_epochs_0_exports_the_pretrained_classifier_as_is(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    as_is = tiny_recipe.model_copy(
        update={"classifier": tiny_recipe.classifier.model_copy(update={"epochs": 0, "weights": "default"})}
    )
    imagenet_like = Dataset(
        tiny_dataset.format, tiny_dataset.root, [f"c{i}" for i in range(1000)], tiny_dataset.records
    )
    model_path = train_classifier(as_is, imagenet_like, tmp_path / "classifier")
    assert not (tmp_path / "classifier" / "checkpoints").exists()  # nothing trained
    exported, pretrained = load_exported_model(model_path), build_classifier(num_classes=1000)
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(exported.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="no classification head"):
        train_classifier(as_is, tiny_dataset, tmp_path / "other")


def test_train_images_of_one_class_are_refused(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    from dataclasses import replace

    one_class = replace(
        tiny_dataset, class_names=["class0"], records=[replace(r, label=0) for r in tiny_dataset.records]
    )
    with pytest.raises(ValueError, match="train split has images of 1 class; .* at least 2 classes"):
        train_classifier(tiny_recipe, one_class, tmp_path / "classifier")
    assert not (tmp_path / "classifier").exists()
