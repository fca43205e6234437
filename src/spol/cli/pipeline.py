"""`spol pipeline` and `spol demo`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spol.cli._app import app, explained_failures, fail, quiet_other_ranks
from spol.cli._options import DEFAULT_RECIPE, DataOption, FormatOption, RecipeOption, SetOption

if TYPE_CHECKING:
    from spol.pipeline import PipelineResult


@app.command("pipeline")
def pipeline_command(
    data: DataOption,
    data_format: FormatOption,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Run folder (created; finished stages in it are skipped). It must be new, empty or made by this "
        "command, and not inside another run folder.",
        show_default=False,
    ),
    recipe: RecipeOption = DEFAULT_RECIPE,
    overrides: SetOption = None,
    force: bool = typer.Option(
        False,
        "--force",
        help="Redo every stage even when its output exists: the old results are removed first, then only "
        "files spol wrote are replaced or deleted.",
    ),
    select: list[str] = typer.Option(
        [],
        "--select",
        help="Choose a training setting on val, e.g. --select cam.lr=0.02,0.05 --select baseline.lr=0.01,0.02,0.05 "
        "(repeatable): every method trains each of its candidates (cam.* changes SPOL and MFF-CAM, seg.* and "
        "pseudo_masks.* SPOL, baseline.* CAM; data.*, backbone, weights all), keeps the best by val MaxBoxAccV2 "
        "and evaluates only that one on test.",
    ),
    overwrite_foreign: bool = typer.Option(
        False,
        "--overwrite-foreign",
        help="Write into an --out folder that holds files spol did not write (they are never deleted; "
        "same-named results are replaced). Without it such a folder is refused.",
    ),
    save_scoremaps: bool = typer.Option(
        False,
        "--save-scoremaps",
        help="Also save every val and test score map as OUT/scoremaps/<method>/<split>/<image id>.npy "
        "(the layout `spol evaluate-maps --scoremaps` reads), to re-score a run or compare it with other maps.",
    ),
) -> None:
    """Train SPOL, MFF-CAM and the vanilla CAM on class labels; evaluate them where there are boxes; write the report.

    SPOL is the CAM network (MFF-Net), the pseudo masks and the segmentation network; MFF-CAM is its
    CAM network alone. Training uses the class labels only. Boxed images make the evaluation: the
    dataset's own boxed val/test splits, or boxes drawn for a few images per class, split between val
    (thresholds, settings and the localizing method are chosen there) and test (the metrics). With no
    box at all everything is still trained and OUT/localizer.json written, without metrics.

    Every stage runs on the recipe's trainer: set trainer.devices / trainer.num_nodes for several GPUs
    (Lightning starts the other processes itself, or launch with torchrun / SLURM); training and
    inference are sharded and one process writes the results. Batch sizes are global.
    """
    from spol.config import load_recipe
    from spol.pipeline import run_pipeline
    from spol.runtime.distributed import is_global_zero

    quiet_other_ranks()
    if not data.exists():
        raise fail(f"{data}: no such dataset folder")
    with explained_failures(out):
        loaded = load_recipe(recipe, overrides or ())
        result = run_pipeline(
            loaded,
            data,
            data_format,
            out,
            force=force,
            save_scoremaps=save_scoremaps,
            select=select,
            overwrite_foreign=overwrite_foreign,
            recipe_name=recipe,
        )
    if is_global_zero():
        _print_result(result)


def _print_result(result: PipelineResult, *, smoke_test: bool = False) -> None:
    from spol.localization import METHOD_LABELS
    from spol.report import format_comparison

    if smoke_test:
        typer.echo("smoke test: tiny data and a few steps check that every stage runs; these numbers mean nothing")
    typer.echo(format_comparison(result.metrics))
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"\nlocalizes with: {METHOD_LABELS[result.method]} (spol localize IMAGES --run {result.run_dir})")
    typer.echo(f"metrics: {result.metrics_path}\nreport:  {result.report_path}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(
        Path("runs/demo"),
        "--out",
        help="Run folder; the synthetic data goes to OUT/data. It must be new, empty or an earlier demo's, and "
        "not inside another run folder.",
    ),
    quick: bool = typer.Option(False, "--quick", help="Smaller data and fewer steps (a smoke test, ~30 s on 2 cores)."),
    force: bool = typer.Option(False, "--force", help="Regenerate the data and redo every stage."),
) -> None:
    """Make the synthetic benchmark, run the pipeline with the CPU recipe, print SPOL, MFF-CAM and CAM."""
    from spol.pipeline import run_demo

    with explained_failures(out):
        result = run_demo(out, quick=quick, force=force)
    _print_result(result, smoke_test=quick)
