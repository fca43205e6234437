"""The CAM stage trains MFF-Net (or the vanilla CAM baseline) and writes a complete run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from spol.config import Recipe, load_recipe, with_overrides
from spol.data import Dataset
from spol.models import MFFNet, VanillaCAM, build_backbone, build_mffnet_cam, build_vanilla_cam, load_exported_model
from spol.runtime.engine import seed_everything
from spol.stages import train_cam
from spol.stages.parameters import freeze_backbone


def test_train_cam_writes_the_run_folder_and_a_rebuildable_model(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    run = tmp_path / "cam"
    model_path = train_cam(tiny_recipe, tiny_dataset, run)
    assert model_path == run / "model.pt"
    for name in ("config.yaml", "train.log", "metrics.csv", "checkpoints/last.ckpt", "checkpoints/epoch-000.ckpt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    assert load_recipe(str(run / "config.yaml")) == tiny_recipe
    model = load_exported_model(model_path)
    assert isinstance(model, MFFNet) and model.aux_branch
    out = model(torch.zeros(2, 3, 56, 56))
    assert out.logits.shape == (2, tiny_dataset.num_classes)
    # Training moved the weights away from the seeded initialisation.
    seed_everything(tiny_recipe.seed)
    initial = build_mffnet_cam(backbone=tiny_recipe.backbone, num_classes=2, weights=None).state_dict()
    trained = model.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if k.startswith("classifier"))
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if k.startswith("backbone"))
    # Two optimiser steps (8 images, batch 4) were logged.
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "kind,epoch,step,loss,accuracy,lr"
    assert [row.split(",")[:3] for row in rows[1:]] == [["step", "0", "1"], ["step", "0", "2"], ["epoch", "0", "2"]]

    # Rerunning skips: model.pt is returned untouched.
    mtime = model_path.stat().st_mtime_ns
    assert train_cam(tiny_recipe, tiny_dataset, run) == model_path
    assert model_path.stat().st_mtime_ns == mtime


def test_baseline_trains_the_vanilla_cam(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    model = load_exported_model(train_cam(tiny_recipe, tiny_dataset, tmp_path / "baseline", baseline=True))
    assert isinstance(model, VanillaCAM)
    assert model(torch.zeros(1, 3, 64, 64)).maps.shape == (1, 2, 2, 2)


@pytest.mark.slow
def test_imagenet_style_recipe_freezes_the_stem_and_has_one_head(tiny_dataset: Dataset, tmp_path: Path) -> None:
    recipe = load_recipe("cpu", ["weights=null", "data.resize=64", "data.crop=56", "data.num_workers=0",
                                 "cam.batch_size=4", "cam.epochs=1", "cam.min_steps=null", "cam.aux_branch=false",
                                 "cam.freeze_stem=true", "cam.freeze_blocks=0", "cam.lr=0.5", "trainer.accelerator=cpu",
                                 "trainer.devices=1"])
    model = load_exported_model(train_cam(recipe, tiny_dataset, tmp_path / "cam"))
    assert not model.aux_branch
    seed_everything(recipe.seed)
    initial = build_mffnet_cam(backbone=recipe.backbone, num_classes=2, weights=None, aux_branch=False).state_dict()
    trained = model.state_dict()
    stem = [
        k
        for k in initial
        if k.startswith(("backbone.body.conv_stem.", "backbone.body.bn1.weight", "backbone.body.bn1.bias"))
    ]
    assert stem and all(torch.equal(initial[k], trained[k]) for k in stem)
    assert not torch.equal(
        initial["backbone.body.blocks.0.0.conv_dw.weight"], trained["backbone.body.blocks.0.0.conv_dw.weight"]
    )


def test_empty_train_split_is_an_error(tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path) -> None:
    from dataclasses import replace

    only_test = Dataset(
        "csv", tiny_dataset.root, tiny_dataset.class_names, [replace(r, split="test") for r in tiny_dataset.records]
    )
    with pytest.raises(ValueError, match="no 'train' images"):
        train_cam(tiny_recipe, only_test, tmp_path / "cam")
    assert not (tmp_path / "cam" / "model.pt").exists()


@pytest.mark.parametrize("baseline", [False, True])
def test_train_images_of_one_class_are_refused(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path, baseline: bool
) -> None:
    from dataclasses import replace

    one_class = replace(
        tiny_dataset, class_names=["class0"], records=[replace(r, label=0) for r in tiny_dataset.records]
    )
    with pytest.raises(ValueError, match="train split has images of 1 class; .* at least 2 classes"):
        train_cam(tiny_recipe, one_class, tmp_path / "cam", baseline=baseline)
    # Two classes, but every image of the second is a test image: the loss would be 0 all the same.
    second_held_out = replace(
        tiny_dataset, records=[replace(r, split="test") if r.label else r for r in tiny_dataset.records]
    )
    with pytest.raises(ValueError, match="images of 1 class of its 2;"):
        train_cam(tiny_recipe, second_held_out, tmp_path / "cam", baseline=baseline)
    assert not (tmp_path / "cam").exists()


def test_adamw_with_one_cycle_and_frozen_first_layers(
    tiny_recipe: Recipe, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    recipe = with_overrides(
        tiny_recipe,
        ["baseline.optimizer=adamw", "baseline.lr=0.001", "baseline.schedule=onecycle", "baseline.freeze_stem=true",
         "baseline.freeze_blocks=1", "baseline.epochs=2"],
    )
    run = tmp_path / "baseline"
    train_cam(recipe, tiny_dataset, run, baseline=True)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    states = checkpoint["optimizer_states"][0]
    assert all("exp_avg" in state for state in states["state"].values())  # AdamW's moments
    groups = {group["name"]: group for group in states["param_groups"]}
    assert groups["new"]["max_lr"] == pytest.approx(0.001) and groups["backbone"]["max_lr"] == pytest.approx(0.0001)
    rates = [
        float(row.split(",")[5]) for row in (run / "metrics.csv").read_text().splitlines()[1:] if row.startswith("step")
    ]
    assert max(rates) <= 0.001 and rates[-1] < 1e-6  # up to the new layers' lr, then annealed to nearly 0
    trained = load_exported_model(run / "model.pt").state_dict()
    seed_everything(recipe.seed)
    initial = build_vanilla_cam(backbone=recipe.backbone, num_classes=2, weights=None).state_dict()
    first_layers = ("backbone.body.conv_stem.", "backbone.body.bn1.", "backbone.body.blocks.0.")
    frozen = [k for k in initial if k.startswith(first_layers) and "running" not in k and "num_batches" not in k]
    assert any(".blocks.0." in k for k in frozen) and all(torch.equal(initial[k], trained[k]) for k in frozen)
    assert not torch.equal(  # the next stage trains
        initial["backbone.body.blocks.1.0.conv_pw.weight"], trained["backbone.body.blocks.1.0.conv_pw.weight"]
    )
    assert not torch.equal(initial["classifier.weight"], trained["classifier.weight"])


def test_freezing_names_the_stages_of_either_backbone() -> None:
    resnet = build_backbone("resnet50", weights=None)
    frozen = freeze_backbone(resnet, 2)
    assert {name.split(".")[0] for name in frozen} == {"conv1", "bn1", "layer1", "layer2"}
    assert all(p.requires_grad for n, p in resnet.named_parameters() if n.startswith(("layer3.", "layer4.")))
    with pytest.raises(ValueError, match="cannot freeze 5 blocks of ResNet50Backbone: it has 4"):
        freeze_backbone(resnet, 5)


def test_a_backbone_without_a_known_stem_is_refused_and_left_trainable() -> None:
    backbone = nn.Module()
    backbone.layer1 = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="cannot freeze the stem of Module"):
        freeze_backbone(backbone, 1)
    assert all(parameter.requires_grad for parameter in backbone.parameters())
