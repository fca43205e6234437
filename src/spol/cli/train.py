"""`spol train-classifier`, `spol train-cam`, `spol train-seg`: one training stage each, in its own run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spol.cli._app import app, fail, quiet_other_ranks
from spol.config import SHIPPED_RECIPES, Recipe, load_recipe

if TYPE_CHECKING:
    from spol.data import Dataset

_RECIPE_HELP = (
    f"Recipe: a shipped name ({', '.join(SHIPPED_RECIPES)}) or a YAML file. "
    "cub/imagenet are the paper's recipes, cpu a small CPU demonstration."
)
_SET_HELP = (
    "Override one recipe key, e.g. --set cam.lr=0.01 --set weights=/path/resnet50.pth (repeatable; values are YAML)."
)
_OUT_HELP = (
    "Run folder: config.yaml, train.log, metrics.csv, tb/, checkpoints/, model.pt. "
    "A finished run (model.pt) is skipped; an interrupted one resumes from checkpoints/last.ckpt."
)
_FORCE_HELP = "Start over: delete this run's checkpoints, logs and model first."


def _prepare(
    recipe_name: str, overrides: list[str] | None, data: Path, dataset_format: str
) -> tuple[Recipe, Dataset]:
    """The recipe and the dataset with its held-out val split; errors become CLI failures."""
    from spol.data import hold_out_val, read_dataset

    try:
        recipe: Recipe = load_recipe(recipe_name, overrides or ())
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    if not data.exists():
        raise fail(f"dataset root {data} does not exist")
    try:
        dataset = read_dataset(data, dataset_format)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    if dataset.problems:
        typer.echo(
            f"warning: {len(dataset.problems)} problems while reading {data} (see `spol data summary`); "
            "their images are left out",
            err=True,
        )
    return recipe, hold_out_val(dataset, share=recipe.data.val_share, seed=recipe.seed)


def _run(train: Callable[..., Path], *args: Any, **kwargs: Any) -> None:
    quiet_other_ranks()
    try:
        model_path = train(*args, **kwargs)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    except RuntimeError as error:
        raise fail(str(error), 1) from error
    typer.echo(str(model_path))


@app.command("train-classifier")
def train_classifier_command(
    data: Path = typer.Option(..., "--data", help="Dataset root folder."),
    dataset_format: str = typer.Option(..., "--format", help="Dataset format: cub, wsol, imagenet or csv."),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    recipe: str = typer.Option("cpu", "--recipe", help=_RECIPE_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=_SET_HELP),
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
) -> None:
    """Fine-tune the classifier (recipe section `classifier`) on the train split; prints the model path."""
    from spol.stages import train_classifier

    loaded, dataset = _prepare(recipe, overrides, data, dataset_format)
    _run(train_classifier, loaded, dataset, out, force=force)


@app.command("train-cam")
def train_cam_command(
    data: Path = typer.Option(..., "--data", help="Dataset root folder."),
    dataset_format: str = typer.Option(..., "--format", help="Dataset format: cub, wsol, imagenet or csv."),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    recipe: str = typer.Option("cpu", "--recipe", help=_RECIPE_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=_SET_HELP),
    baseline: bool = typer.Option(
        False,
        "--baseline",
        help="Train the vanilla CAM network (deepest features only, plain cross-entropy) instead of MFF-Net.",
    ),
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
) -> None:
    """Train the CAM network (MFF-Net #1, recipe section `cam`) on the train split's labels; prints the model path."""
    from spol.stages import train_cam

    loaded, dataset = _prepare(recipe, overrides, data, dataset_format)
    _run(train_cam, loaded, dataset, out, baseline=baseline, force=force)


@app.command("train-seg")
def train_seg_command(
    data: Path = typer.Option(..., "--data", help="Dataset root folder."),
    dataset_format: str = typer.Option(..., "--format", help="Dataset format: cub, wsol, imagenet or csv."),
    pseudo_masks: Path = typer.Option(
        ..., "--pseudo-masks", help="Folder written by `spol pseudo-masks` for this dataset."
    ),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    recipe: str = typer.Option("cpu", "--recipe", help=_RECIPE_HELP),
    overrides: list[str] | None = typer.Option(None, "--set", help=_SET_HELP),
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
) -> None:
    """Train the class-agnostic segmentation network (MFF-Net #2, `seg`) on pseudo masks; prints the model path."""
    from spol.stages import train_seg

    if not pseudo_masks.is_dir():
        raise fail(f"pseudo-mask folder {pseudo_masks} does not exist; run `spol pseudo-masks` first")
    loaded, dataset = _prepare(recipe, overrides, data, dataset_format)
    _run(train_seg, loaded, dataset, pseudo_masks, out, force=force)
