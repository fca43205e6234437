"""Training recipes: YAML files validated into frozen, typed models.

A recipe fixes every hyper-parameter of a run (backbone, stages, trainer). Shipped recipes
live in ``spol/recipes/<name>.yaml`` (``cub``, ``imagenet``, ``cpu``); `load_recipe` reads one
of them or any YAML path and applies ``dotted.key=value`` overrides. Every model forbids
unknown keys, so a misspelled key is an error naming the key and the valid ones.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SHIPPED_RECIPES: tuple[str, ...] = ("cub", "imagenet", "cpu")
"""Names accepted by `load_recipe` besides YAML paths."""

Schedule = Literal["constant", "linear", "poly", "onecycle"]
"""Learning-rate schedule over the stage's optimiser steps: ``constant``; ``linear``
``lr * (1 - t/T)``; ``poly`` ``lr * (1 - t/T) ** 0.9``; ``onecycle`` torch's `OneCycleLR` (warm up
to ``lr`` over the first 30 % of the steps, then cosine down; momentum cycled the other way)."""

Optimizer = Literal["sgd", "adamw"]
"""``sgd``: SGD with ``momentum``, ``nesterov``, L2 ``weight_decay`` (the paper's); ``adamw``: AdamW
with decoupled ``weight_decay`` (``momentum`` and ``nesterov`` unused)."""


class _Strict(BaseModel):
    # allow_inf_nan=False: `1e309` (inf) and `.nan` are refused, not trained with.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Strict):
    """Image sizes and loading shared by the CAM and segmentation stages."""

    resize: int = Field(256, gt=0, description="training images are resized to resize x resize")
    crop: int = Field(224, gt=0, description="then randomly cropped to crop x crop")
    val_share: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="per class, the share of train images drawn (from the boxed ones) as val, and as test, when the "
        "dataset has no boxed split of its own",
    )
    num_workers: int = Field(4, ge=0, description="DataLoader worker processes")
    bad_images: Literal["skip", "refuse"] = Field(
        "skip",
        description="images that do not decode (checked before training): 'skip' them, counted and reported, "
        "or 'refuse' the run",
    )


class StageOptimConfig(_Strict):
    """SGD settings shared by every training stage."""

    epochs: int = Field(1, ge=1, description="passes over the train split")
    batch_size: int = Field(
        64,
        ge=1,
        description="images per optimiser step over all devices (the global batch); each device loads its share",
    )
    lr: float = Field(0.02, gt=0.0, description="learning rate of the new layers")
    backbone_lr_mult: float = Field(0.1, ge=0.0, description="backbone learning rate = lr * backbone_lr_mult")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    nesterov: bool = Field(True, description="Nesterov momentum")
    weight_decay: float = Field(1e-4, ge=0.0, description="L2 weight decay")
    optimizer: Optimizer = Field("sgd", description="'sgd' (the paper's) or 'adamw'")
    schedule: Schedule = Field("constant", description="learning-rate schedule over the stage's steps")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (None: run all epochs)")
    min_steps: int | None = Field(
        None,
        ge=1,
        description="train at least this many optimiser steps: on a small train split the epochs are raised "
        "to reach them (None: exactly `epochs`)",
    )


class ClassifierConfig(StageOptimConfig):
    """The image classifier that gives the class for Top-1 / Top-5 Loc."""

    epochs: int = Field(
        1, ge=0, description="passes over the train split; 0: use the weights as they are, head included (ImageNet)"
    )

    enabled: bool = Field(
        True,
        description="false: the CAM network's own classification gives Top-1/Top-5 "
        "(the paper uses a separate classifier)",
    )
    backbone: str = Field("efficientnet_lite0", description="'resnet50', 'efficientnet_lite0' or 'timm:<name>'")
    weights: str | None = Field(
        "default", description="'default' (bundled, lite0 only), a local file, or null (random)"
    )
    resize: int | None = Field(None, gt=0, description="train resize; null: data.resize")
    crop: int | None = Field(None, gt=0, description="train crop; null: data.crop")
    test_size: int | None = Field(
        None, gt=0, description="test images resized (no crop) to test_size x test_size; null: the train crop"
    )
    weights_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="EfficientNet-B7 only: the SHA-256 of a weights file you vouch for; null: the paper's known files",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout before the head (timm models; the release's B7: 0.5)"
    )
    drop_connect: float = Field(
        0.0, ge=0.0, lt=1.0, description="stochastic depth over the blocks (timm models; the release's B7: 0.2)"
    )


class _LocalizerOptimConfig(StageOptimConfig):
    freeze_stem: bool = Field(False, description="freeze the backbone's first conv and BN (ImageNet recipe)")
    freeze_blocks: int = Field(
        0,
        ge=0,
        description="also freeze the backbone's first N stages after the stem (EfficientNet blocks.0, 1, ...; "
        "ResNet layer1, 2, ...): no backward pass through them, a faster step on CPU; needs freeze_stem",
    )

    @model_validator(mode="after")
    def _blocks_after_the_stem(self) -> _LocalizerOptimConfig:
        if self.freeze_blocks and not self.freeze_stem:
            raise ValueError(
                f"freeze_blocks={self.freeze_blocks} needs freeze_stem=true: a trainable stem under frozen "
                "blocks would still need the backward pass through them"
            )
        return self


class CamConfig(_LocalizerOptimConfig):
    """The CAM network (MFF-Net #1) trained on image labels."""

    aux_branch: bool = Field(
        True, description="deep-only branch distilled into the fused head (CUB) or a single head (ImageNet)"
    )


class BaselineConfig(_LocalizerOptimConfig):
    """The vanilla CAM baseline, trained at its own settings (a fair comparison tunes every method)."""


class PseudoMaskConfig(_Strict):
    """Pseudo-mask generation from the CAM network and their double thresholds."""

    resize: int = Field(256, gt=0, description="images are resized to resize x resize (no crop) for the CAM")
    foreground: float = Field(0.25, gt=0.0, lt=1.0, description="P > t or G > t is foreground")
    background: float = Field(0.01, gt=0.0, lt=1.0, description="P < t (and not foreground) is background")
    batch_size: int = Field(32, ge=1, description="images per forward pass per device")
    workers: int = Field(
        0, ge=0, description="processes computing the Gaussian prior and writing the PNGs (0: the inference process)"
    )


class SegConfig(_LocalizerOptimConfig):
    """The class-agnostic segmentation network (MFF-Net #2) trained on pseudo masks."""

    backbone_lr_mult: float = Field(1.0, ge=0.0, description="the release trains all parameters at lr")


class EvaluationConfig(_Strict):
    """The WSOL evaluation protocol's settings."""

    cam_curve_interval: float = Field(0.01, gt=0.0, le=1.0, description="step between score-map thresholds")
    iou_thresholds: tuple[int, ...] = Field((30, 50, 70), description="IoU thresholds (percent) of MaxBoxAccV2")
    input_size: int = Field(
        224, gt=0, description="test images are resized (no crop) to input_size x input_size for the networks"
    )
    batch_size: int = Field(64, ge=1, description="images per forward pass per device for score maps and classes")
    align_corners: bool = Field(
        False, description="upsample segmentation logits to the protocol grid with align_corners (the release: true)"
    )
    workers: int | None = Field(
        None, ge=0, description="threads computing boxes and histograms per process; null: the CPU count / devices"
    )


def multiprocessing_refusal(strategy: str) -> str:
    """Why spol refuses Lightning's spawn and fork strategies, and what to use instead."""
    return (
        f"trainer.strategy={strategy!r} starts processes that run only Lightning's loop, not the rest of spol's "
        "stage (pseudo masks, evaluation counts and files would be lost): use trainer.strategy=ddp, which runs "
        "the whole command in every process (started by Lightning, torchrun or SLURM); in a notebook, use "
        "trainer.devices=1 or run the spol command in a terminal"
    )


class TrainerConfig(_Strict):
    """Arguments of `lightning.Trainer`, for training and inference alike.

    DDP over GPUs and nodes needs no code change, and batch sizes are global (divided over the devices).
    """

    accelerator: str = Field("auto", description="'cpu', 'gpu', 'auto', ...")
    devices: int | str | list[int] = Field("auto", description="number of devices, 'auto' or a list of ids")
    num_nodes: int = Field(1, ge=1, description="machines (SLURM / torchrun set the ranks)")
    strategy: str = Field(
        "auto",
        description="'auto' or 'ddp' (every process runs the whole command); spawn and fork strategies are refused",
    )
    precision: str = Field(
        "32-true", description="'32-true'; on GPU 'bf16-mixed' or '16-mixed' (training and inference alike)"
    )
    channels_last: bool = Field(
        False, description="NHWC memory format for the networks and their inputs (faster convolutions on GPU)"
    )
    accumulate_grad_batches: int = Field(
        1, ge=1, description="batches accumulated per optimiser step (they split the global batch)"
    )
    sync_batchnorm: bool = Field(False, description="DDP: BatchNorm statistics over all ranks' batches (SyncBatchNorm)")
    deterministic: bool | Literal["warn"] = Field(False, description="torch deterministic algorithms")
    log_every_n_steps: int = Field(50, ge=1, description="steps between logged training metrics")
    keep_checkpoints: int | None = Field(
        2,
        ge=0,
        description="epoch-NNN.ckpt files kept beside last.ckpt, the newest (a ResNet-50 MFF-Net's is 200 MB); "
        "null: one per epoch",
    )
    limit_train_batches: int | float | None = Field(
        None, description="batches (int) or share (float) of each epoch; null: all"
    )
    gradient_clip_val: float | None = Field(None, description="clip gradient norm at this value; null: no clipping")

    @model_validator(mode="after")
    def _whole_command_in_every_process(self) -> TrainerConfig:
        if any(word in self.strategy for word in ("spawn", "fork", "notebook")):
            raise ValueError(multiprocessing_refusal(self.strategy))
        return self


class Recipe(_Strict):
    """Everything a training run needs besides the data."""

    backbone: str = Field(
        "resnet50", description="localization backbone: 'resnet50', 'efficientnet_lite0' or 'timm:<name>'"
    )
    weights: str | None = Field(None, description="'default' (bundled, lite0 only), a local file, or null (random)")
    seed: int = Field(0, description="seed of every random generator (Lightning seed_everything, workers too)")
    data: DataConfig = DataConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    cam: CamConfig = CamConfig()
    baseline: BaselineConfig = BaselineConfig()
    pseudo_masks: PseudoMaskConfig = PseudoMaskConfig()
    seg: SegConfig = SegConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    trainer: TrainerConfig = TrainerConfig()


def _model_at(path: Sequence[str | int]) -> type[BaseModel] | None:
    # The pydantic model whose field `path` names a key of, or None when the path leaves the models.
    model: type[BaseModel] = Recipe
    for key in path:
        field = model.model_fields.get(str(key))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def _valid_keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


_SHOWN_ERRORS = 20
"""Validation errors listed at most: the first ones tell what is wrong."""


def _explain(error: ValidationError, source: str) -> ValueError:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc)
        if item["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            valid = f"; valid keys here: {_valid_keys(parent)}" if parent is not None else ""
            lines.append(f"unknown key {key!r}{valid}")
        elif isinstance(item.get("input"), dict):  # a whole section's rule: its message says it all
            lines.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{key}: {item['msg']} (got {_shortened(repr(item.get('input')), 120)})")
    if len(lines) > _SHOWN_ERRORS:
        lines[_SHOWN_ERRORS:] = [f"and {len(lines) - _SHOWN_ERRORS} more"]
    return ValueError(f"invalid recipe {source}:\n  " + "\n  ".join(lines))


MAX_RECIPE_BYTES = 1 << 20
"""A recipe file larger than this is refused unread (the shipped ones are a few kB)."""
MAX_RECIPE_NODES = 10_000
"""Values a recipe may hold once its YAML aliases are expanded (the shipped ones hold about 150): an alias
costs nothing to write, so nested aliases can stand for billions of values (a "billion laughs" file)."""
MAX_RECIPE_DEPTH = 20
"""Nesting a recipe may reach (the shipped ones reach 3)."""


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader; `_parse_yaml` checks the composed document before building any Python value."""


def _expanded_size(node: yaml.Node, what: str) -> int:
    """The number of values `node` stands for with every alias expanded; refused past the budget or depth."""
    sizes: dict[int, int] = {}  # an alias is the very node it names: each node is counted once, reused after
    open_nodes: set[int] = set()

    def size(item: yaml.Node, depth: int) -> int:
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ValueError(f"{what}: a YAML alias refers to a value that holds it (recursive anchor)")
        if depth > MAX_RECIPE_DEPTH:
            raise ValueError(f"{what}: values nested more than {MAX_RECIPE_DEPTH} deep; a recipe needs 3")
        open_nodes.add(key)
        total = 1
        if isinstance(item, yaml.SequenceNode):
            children: list[yaml.Node] = list(item.value)
        elif isinstance(item, yaml.MappingNode):
            children = [part for pair in item.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_RECIPE_NODES:
                raise ValueError(
                    f"{what}: more than {MAX_RECIPE_NODES} values once its YAML aliases are expanded; "
                    "a recipe holds a few hundred (write the values out, or use fewer nested aliases)"
                )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(node, 0)


def _parse_yaml(text: str, what: str) -> Any:
    """`yaml.safe_load` of `text` within a size, alias and depth budget, so a hostile recipe is refused at once.

    Raises:
        ValueError: `text` is not YAML, or past a budget (`MAX_RECIPE_BYTES`, `MAX_RECIPE_NODES`,
            `MAX_RECIPE_DEPTH`); the message starts with `what` (``"recipe FILE"``, ``"override KEY=..."``).
    """
    if len(text) > MAX_RECIPE_BYTES:
        raise ValueError(f"{what} is {len(text)} characters long; a recipe is a few kB (at most {MAX_RECIPE_BYTES})")
    loader = _RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, what)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ValueError(f"{what} is not valid YAML: {_shortened(str(error))}") from None
    except RecursionError:
        raise ValueError(f"{what}: values nested too deep; a recipe needs 3 levels") from None
    finally:
        loader.dispose()


def _shortened(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters, so that an error quoting a value stays one readable line."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def _recipe_path(name_or_path: str) -> tuple[Path | None, str]:
    if name_or_path in SHIPPED_RECIPES:
        resource = importlib.resources.files("spol") / "recipes" / f"{name_or_path}.yaml"
        return None, resource.read_text(encoding="utf-8")
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"recipe {name_or_path!r} is neither a shipped recipe ({', '.join(SHIPPED_RECIPES)}) "
            "nor an existing YAML file"
        )
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise ValueError(
            f"recipe {path} is {path.stat().st_size} bytes; a recipe is a few kB (at most {MAX_RECIPE_BYTES}): "
            "is it the right file?"
        )
    return path, path.read_text(encoding="utf-8")


def _apply_override(tree: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {override!r} must read dotted.key=value, e.g. cam.lr=0.01")
    parts = key.split(".")
    model: type[BaseModel] = Recipe
    node = tree
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            where = ".".join(parts[:depth]) or "the top level"
            raise ValueError(f"override {override!r}: unknown key {key!r}; valid keys at {where}: {_valid_keys(model)}")
        if depth == len(parts) - 1:
            break
        sub = _model_at(parts[: depth + 1])
        if sub is None:
            raise ValueError(f"override {override!r}: {'.'.join(parts[: depth + 1])!r} is a value, not a section")
        model = sub
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = _parse_yaml(raw, f"override {_shortened(override, 80)!r}")


def load_recipe(name_or_path: str, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe and apply command-line overrides.

    Args:
        name_or_path: a shipped recipe name (``cub``, ``imagenet``, ``cpu``) or a YAML file path.
        overrides: ``"dotted.key=value"`` strings applied in order; the value is parsed as YAML
            (``cam.lr=0.01``, ``weights=null``, ``trainer.devices=[0,1]``).

    Raises:
        FileNotFoundError: not a shipped name and no such file.
        ValueError: invalid YAML, an unknown key (the message lists the valid keys), or a value
            of the wrong type or range.
    """
    path, text = _recipe_path(name_or_path)
    source = str(path) if path is not None else f"{name_or_path!r}"
    tree = _parse_yaml(text, f"recipe {source}")
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ValueError(f"recipe {source} must be a YAML mapping of keys, not {type(tree).__name__}")
    for override in overrides:
        _apply_override(tree, override)
    try:
        return Recipe.model_validate(tree)
    except ValidationError as error:
        raise _explain(error, source) from None


def with_overrides(recipe: Recipe, overrides: Sequence[str]) -> Recipe:
    """`recipe` with ``"dotted.key=value"`` overrides applied, checked like `load_recipe`'s.

    Raises:
        ValueError: an unknown key, or a value of the wrong type or range.
    """
    tree = recipe.model_dump(mode="json")
    for override in overrides:
        _apply_override(tree, override)
    try:
        return Recipe.model_validate(tree)
    except ValidationError as error:
        raise _explain(error, "with overrides " + ", ".join(overrides)) from None


def recipe_to_yaml(recipe: Recipe) -> str:
    """The full effective recipe as YAML text that `load_recipe` reads back to an equal recipe."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


__all__ = [
    "SHIPPED_RECIPES",
    "BaselineConfig",
    "CamConfig",
    "ClassifierConfig",
    "DataConfig",
    "EvaluationConfig",
    "PseudoMaskConfig",
    "Recipe",
    "SegConfig",
    "StageOptimConfig",
    "TrainerConfig",
    "load_recipe",
    "recipe_to_yaml",
    "with_overrides",
]
