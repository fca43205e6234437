"""`spol train-classifier`, `spol train-cam`, `spol train-seg`: one training stage each, in its own run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spol.cli._app import app, claimed_output, fail, quiet_other_ranks
from spol.cli._options import DEFAULT_RECIPE, DataOption, FormatOption, RecipeOption, SetOption
from spol.config import Recipe, load_recipe

if TYPE_CHECKING:
    from spol.data import Dataset

_StageOutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        help="Run folder: config.yaml, train.log, metrics.csv, tb/, checkpoints/, model.pt. "
        "A finished run (model.pt) is skipped; an interrupted one resumes from checkpoints/last.ckpt. "
        "It must be new, empty or made by this command, and not inside another run folder.",
        show_default=False,
    ),
]
_ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Start over: delete this run's model, checkpoints, metrics.csv and TensorBoard files first "
        "(train.log is kept and appended to).",
    ),
]


def _prepare(recipe_name: str, overrides: list[str] | None, data: Path, dataset_format: str) -> tuple[Recipe, Dataset]:
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
            f"warning: {len(dataset.problems)} problem(s) while reading {data}, the first: {dataset.problems[0]} "
            "(all listed by `spol data summary`)",
            err=True,
        )
    return recipe, hold_out_val(dataset, share=recipe.data.val_share, seed=recipe.seed)


def _run(train: Callable[..., Path], command: str, out: Path, *args: Any, **kwargs: Any) -> Path:
    """``train(*args, run_dir=out, **kwargs)``, `out` claimed as `command`'s folder (`spol.rundir.stage_outputs`)."""
    from spol.rundir import stage_outputs

    quiet_other_ranks()
    with claimed_output(out, stage_outputs(command)):
        try:
            model_path = train(*args, run_dir=out, **kwargs)
        except (FileNotFoundError, ValueError) as error:
            raise fail(str(error)) from error
        except RuntimeError as error:
            raise fail(str(error), 1) from error
    typer.echo(str(model_path))
    return model_path


def _write_localizer(
    out: Path, recipe: Recipe, dataset: Dataset, *, classifier: Path, method: str, model: Path
) -> None:
    """OUT/localizer.json for `spol localize --run OUT`, at the method's fixed threshold rule (no val choice)."""
    from spol.localization import UNVALIDATED_RULES, write_localizer_config
    from spol.runtime.distributed import is_global_zero

    if not is_global_zero():
        return
    threshold, rule = UNVALIDATED_RULES[method]
    try:
        path = write_localizer_config(
            out,
            class_names=dataset.class_names,
            classifier=classifier.resolve(),
            method=method,
            methods={
                method: {
                    "model": model.resolve(),
                    "kind": "seg" if method == "spol" else "cam",
                    "threshold": threshold,
                    "threshold_rule": rule,
                    "validated": False,
                }
            },
            input_size=recipe.evaluation.input_size,
            precision=recipe.trainer.precision,
            align_corners=recipe.evaluation.align_corners,
        )
    except ValueError as error:
        raise fail(str(error)) from error
    typer.echo(
        f"localizer: {path} ({rule} threshold {threshold:g}, a fixed rule; `spol pipeline` chooses it on boxed val "
        "images)",
        err=True,
    )


@app.command("train-classifier")
def train_classifier_command(
    data: DataOption,
    dataset_format: FormatOption,
    out: _StageOutOption,
    recipe: RecipeOption = DEFAULT_RECIPE,
    overrides: SetOption = None,
    force: _ForceOption = False,
) -> None:
    """Fine-tune the classifier (recipe section `classifier`) on the train split; prints the model path."""
    from spol.stages import train_classifier

    loaded, dataset = _prepare(recipe, overrides, data, dataset_format)
    _run(train_classifier, "train-classifier", out, loaded, dataset, force=force)


@app.command("train-cam")
def train_cam_command(
    data: DataOption,
    dataset_format: FormatOption,
    out: _StageOutOption,
    baseline: bool = typer.Option(
        False,
        "--baseline",
        help="Train the vanilla CAM network (deepest features only, plain cross-entropy, recipe section "
        "`baseline`) instead of MFF-Net.",
    ),
    recipe: RecipeOption = DEFAULT_RECIPE,
    overrides: SetOption = None,
    force: _ForceOption = False,
) -> None:
    """Train the CAM network (MFF-Net #1, recipe section `cam`) on the train split's labels; prints the model path."""
    from spol.stages import train_cam

    loaded, dataset = _prepare(recipe, overrides, data, dataset_format)
    model = _run(train_cam, "train-cam", out, loaded, dataset, baseline=baseline, force=force)
    _write_localizer(out, loaded, dataset, classifier=model, method="cam" if baseline else "mffcam", model=model)


@app.command("train-seg")
def train_seg_command(
    data: DataOption,
    dataset_format: FormatOption,
    out: _StageOutOption,
    pseudo_masks: Annotated[
        Path,
        typer.Option(
            "--pseudo-masks", help="Folder written by `spol pseudo-masks` for this dataset.", show_default=False
        ),
    ],
    classifier: Annotated[
        Path | None,
        typer.Option(
            "--classifier",
            help="The network that names the classes at localize time: the CAM network that made the pseudo "
            "masks or a classifier (a model file, its stage folder or a pipeline run). With it "
            "OUT/localizer.json is written, for `spol localize --run OUT`.",
            show_default=False,
        ),
    ] = None,
    recipe: RecipeOption = DEFAULT_RECIPE,
    overrides: SetOption = None,
    force: _ForceOption = False,
) -> None:
    """Train the class-agnostic segmentation network (MFF-Net #2, `seg`) on pseudo masks; prints the model path."""
    from spol.rundir import model_file
    from spol.stages import train_seg

    if not pseudo_masks.is_dir():
        raise fail(f"pseudo-mask folder {pseudo_masks} does not exist; run `spol pseudo-masks` first")
    try:
        classes = None if classifier is None else model_file(classifier, stages=("classifier", "cam"))
    except FileNotFoundError as error:
        raise fail(f"--classifier: {error}") from error
    loaded, dataset = _prepare(recipe, overrides, data, dataset_format)
    model = _run(train_seg, "train-seg", out, loaded, dataset, pseudo_masks, force=force)
    if classes is not None:
        _write_localizer(out, loaded, dataset, classifier=classes, method="spol", model=model)
