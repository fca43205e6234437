"""Recipes: shipped files validate, unknown keys fail with the valid keys listed, overrides parse as YAML."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from spol.config import SHIPPED_RECIPES, Recipe, load_recipe, recipe_to_yaml


@pytest.mark.parametrize("name", SHIPPED_RECIPES)
def test_shipped_recipes_load_and_round_trip(name: str, tmp_path: Path) -> None:
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe)
    path = tmp_path / "saved.yaml"
    path.write_text(recipe_to_yaml(recipe), encoding="utf-8")
    assert load_recipe(str(path)) == recipe


def test_cub_and_imagenet_hold_the_paper_values() -> None:
    cub = load_recipe("cub")
    assert (cub.backbone, cub.cam.epochs, cub.cam.batch_size, cub.cam.lr, cub.cam.backbone_lr_mult) == (
        "resnet50",
        32,
        64,
        0.02,
        0.1,
    )
    assert (cub.cam.momentum, cub.cam.nesterov, cub.cam.weight_decay) == (0.9, True, 1e-4)
    assert cub.cam.aux_branch and not cub.cam.freeze_stem
    assert (cub.seg.epochs, cub.seg.batch_size, cub.seg.lr, cub.seg.backbone_lr_mult) == (2, 128, 0.02, 1.0)
    c = cub.classifier
    assert (c.backbone, c.resize, c.crop, c.lr, c.backbone_lr_mult, c.epochs, c.batch_size, c.schedule) == (
        "timm:tf_efficientnet_b7",
        685,
        600,
        0.05,
        0.1,
        20,
        16,
        "linear",
    )
    assert (cub.pseudo_masks.foreground, cub.pseudo_masks.background) == (0.25, 0.01)
    imagenet = load_recipe("imagenet")
    assert (imagenet.cam.epochs, imagenet.cam.batch_size, imagenet.seg.epochs) == (1, 128, 1)
    assert not imagenet.cam.aux_branch and imagenet.cam.freeze_stem
    assert imagenet.classifier.epochs == 0  # the released B7 is used as is, when enabled


def test_overrides_parse_values_as_yaml() -> None:
    recipe = load_recipe(
        "cpu",
        ["cam.lr=0.5", "weights=null", "trainer.devices=[0, 1]", "cam.nesterov=false", "trainer.precision=bf16-mixed"],
    )
    assert recipe.cam.lr == 0.5
    assert recipe.weights is None
    assert recipe.trainer.devices == [0, 1]
    assert recipe.cam.nesterov is False
    assert recipe.trainer.precision == "bf16-mixed"
    # Later overrides win; untouched keys keep the file's values.
    assert load_recipe("cpu", ["cam.epochs=3", "cam.epochs=5"]).cam.epochs == 5
    assert load_recipe("cpu", ["cam.epochs=3"]).cam.batch_size == load_recipe("cpu").cam.batch_size


def test_unknown_override_key_names_the_key_and_the_valid_keys() -> None:
    with pytest.raises(ValueError, match=r"'cam\.lrr'.*valid keys at cam: .*backbone_lr_mult"):
        load_recipe("cpu", ["cam.lrr=0.1"])
    with pytest.raises(ValueError, match="valid keys at the top level: backbone, weights, seed"):
        load_recipe("cpu", ["camm.lr=0.1"])
    with pytest.raises(ValueError, match="is a value, not a section"):
        load_recipe("cpu", ["cam.lr.value=0.1"])
    with pytest.raises(ValueError, match="dotted.key=value"):
        load_recipe("cpu", ["cam.lr"])


def test_misspelled_key_in_a_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("backbone: resnet50\ncam:\n  epochs: 2\n  batchsize: 8\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown key 'cam\.batchsize'; valid keys here: epochs, batch_size"):
        load_recipe(str(path))


def test_wrong_types_and_ranges_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cam\.lr"):
        load_recipe("cpu", ["cam.lr=fast"])
    with pytest.raises(ValueError, match=r"cam\.epochs"):
        load_recipe("cpu", ["cam.epochs=0"])
    assert load_recipe("cpu", ["classifier.epochs=0"]).classifier.epochs == 0  # used as is
    with pytest.raises(ValueError, match=r"classifier\.epochs"):
        load_recipe("cpu", ["classifier.epochs=-1"])
    with pytest.raises(ValueError, match=r"cam\.schedule"):
        load_recipe("cpu", ["cam.schedule=cosine"])
    with pytest.raises(ValueError, match=r"freeze_blocks=2 needs freeze_stem=true"):
        load_recipe("cpu", ["baseline.freeze_stem=false", "baseline.freeze_blocks=2"])
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_recipe(str(path))


@pytest.mark.parametrize(
    "override",
    ["cam.lr=1e309", "seg.weight_decay=.inf", "pseudo_masks.foreground=.nan", "trainer.gradient_clip_val=-1e400"],
)
def test_numbers_must_be_finite(override: str, tmp_path: Path) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ValueError, match=rf"{key}: Input should be a finite number"):
        load_recipe("cpu", [override])
    section, name = key.split(".")
    path = tmp_path / "recipe.yaml"
    path.write_text(f"{section}:\n  {name}: 1e309\n", encoding="utf-8")
    with pytest.raises(ValueError, match="finite"):
        load_recipe(str(path))


def test_partial_file_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "partial.yaml"
    path.write_text("seed: 7\n", encoding="utf-8")
    recipe = load_recipe(str(path))
    assert recipe.seed == 7
    assert recipe.cam == Recipe().cam


def test_missing_recipe_and_frozen_models() -> None:
    with pytest.raises(FileNotFoundError, match="cub, imagenet, cpu"):
        load_recipe("no-such-recipe.yaml")
    recipe = load_recipe("cpu")
    with pytest.raises(ValidationError):
        recipe.cam.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork", "ddp_notebook"])
def test_spawn_and_fork_strategies_are_refused_in_one_line(strategy: str) -> None:
    with pytest.raises(ValueError, match=r"trainer: trainer.strategy='ddp_.*' starts processes that run only") as error:
        load_recipe("cpu", [f"trainer.strategy={strategy}"])
    assert "use trainer.strategy=ddp" in str(error.value) and len(str(error.value).splitlines()) == 2


def test_a_trainer_that_lightning_would_fork_is_refused() -> None:
    # Lightning's "auto" strategy forks in a notebook with several devices; the same launcher is refused.
    from spol.config import TrainerConfig
    from spol.runtime.trainer import build_trainer

    forking = TrainerConfig.model_construct(
        **{**TrainerConfig().model_dump(), "accelerator": "cpu", "devices": 2, "strategy": "ddp_fork"}
    )
    with pytest.raises(ValueError, match="starts processes that run only Lightning's loop"):
        build_trainer(forking)


def _alias_bomb(levels: int, key: str = "cam") -> str:
    """Nested YAML aliases: each level lists the one before ten times, 10 ** levels values in a few hundred bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + f"\n{key}: {{lr: *l{levels - 1}}}\n"


@pytest.mark.parametrize("levels", [4, 9])
def test_a_recipe_of_nested_aliases_is_refused_at_once_in_one_short_line(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(levels), encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.yaml: more than 10000 values once its YAML aliases") as caught:
        load_recipe(str(path))
    assert time.perf_counter() - started < 0.5
    assert len(str(caught.value)) < 300
    with pytest.raises(ValueError, match=r"override 'cam=.*: more than 10000 values"):
        load_recipe("cpu", ["cam={" + ", ".join(_alias_bomb(levels).splitlines()) + "}"])


def test_a_recipe_that_refers_to_itself_or_nests_deep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("cam: &a {lr: *a}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="recursive anchor"):
        load_recipe(str(path))
    path.write_text("cam: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="nested"):
        load_recipe(str(path))
    path.write_text("seed: 1\n" + "# padding\n" * 200_000, encoding="utf-8")
    with pytest.raises(ValueError, match=r"r\.yaml is 2000008 bytes; a recipe is a few kB"):
        load_recipe(str(path))


def test_aliases_within_the_budget_still_work_and_long_errors_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("seed: &s 5\ncam: {epochs: *s}\nseg: {epochs: *s}\n", encoding="utf-8")
    recipe = load_recipe(str(path))
    assert (recipe.seed, recipe.cam.epochs, recipe.seg.epochs) == (5, 5, 5)
    path.write_text("cam: {lr: [" + ", ".join(["1"] * 5000) + "]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"cam\.lr") as caught:
        load_recipe(str(path))
    assert len(str(caught.value)) < 400
