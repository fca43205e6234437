"""The backbone table: one entry per family, read by the builders and the training stages alike."""

from __future__ import annotations

import dataclasses

import pytest

from spol.models import BACKBONES, build_backbone, build_classifier
from spol.models.backbone_table import (
    backbone_entry,
    backbone_normalization,
    classifier_head_prefixes,
    stem_and_stage_prefixes,
)
from spol.stages.parameters import freeze_backbone, not_head_predicate


@pytest.mark.parametrize(
    ("name", "normalization", "head"),
    [
        ("resnet50", "imagenet", ("fc.",)),
        ("efficientnet_lite0", "half", ("classifier.",)),
        ("timm:resnet18", "imagenet", ("fc.",)),  # timm's configuration of the model
        ("timm:tf_efficientnet_b7", "imagenet", ("classifier.",)),
        ("timm:inception_v3", "half", ("fc.",)),
    ],
)
def test_each_name_has_a_normalisation_and_a_head(name: str, normalization: str, head: tuple[str, ...]) -> None:
    assert backbone_normalization(name) == normalization
    assert classifier_head_prefixes(name) == head


def test_stem_and_stages_are_named_by_the_entry() -> None:
    resnet = build_backbone("resnet50", weights=None)
    assert stem_and_stage_prefixes(resnet) == (("conv1.", "bn1."), ["layer1.", "layer2.", "layer3.", "layer4."])
    lite0 = build_backbone("efficientnet_lite0", weights=None)
    stem, stages = stem_and_stage_prefixes(lite0)
    assert stem == ("body.conv_stem.", "body.bn1.") and stages == [f"body.blocks.{i}." for i in range(7)]


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'; choose 'resnet50', 'efficientnet_lite0' or"):
        backbone_entry("vgg16")
    with pytest.raises(ValueError, match="give a plain timm model name after 'timm:'"):
        build_backbone("timm:", weights=None)
    with pytest.raises(ValueError, match="unknown classifier backbone 'vgg16'"):
        build_classifier(backbone="vgg16", num_classes=3, weights=None)


def test_a_new_backbone_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # ResNet-50 again under another name, with another normalisation: every user of the table follows.
    monkeypatch.setitem(BACKBONES, "resnet50_half", dataclasses.replace(BACKBONES["resnet50"], normalization="half"))
    backbone = build_backbone("resnet50_half", weights=None)
    assert backbone.name == "resnet50_half" and backbone.normalization == "half"
    frozen = freeze_backbone(backbone, 1)
    assert {name.split(".")[0] for name in frozen} == {"conv1", "bn1", "layer1"}
    classifier = build_classifier(backbone="resnet50_half", num_classes=3, weights=None)
    assert classifier.normalization == "half"
    trained_at_backbone_rate = not_head_predicate("resnet50_half")
    assert not trained_at_backbone_rate("fc.weight") and trained_at_backbone_rate("layer4.0.conv1.weight")
