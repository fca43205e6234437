"""`spol pipeline` and `spol demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from spol.cli._app import app, explained_failures, fail, quiet_other_ranks
from spol.cli._options import DEFAULT_RECIPE, DataOption, FormatOption, RecipeOption, SetOption


@app.command("pipeline")
def pipeline_command(
    data: DataOption,
    data_format: FormatOption,
    out: Path = typer.Option(
        ..., "--out", help="Run folder (created; finished stages in it are skipped).", show_default=False
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
    """Train SPOL and the vanilla CAM baseline, evaluate both, write metrics.json and report.html.

    SPOL is the CAM network, the pseudo masks and the segmentation network; both methods are
    evaluated on the test split with thresholds chosen on val.

    Every stage runs on the recipe's trainer: set trainer.devices / trainer.num_nodes for several GPUs
    (Lightning starts the other processes itself, or launch with torchrun / SLURM); training and
    inference are sharded and one process writes the results. Batch sizes are global.
    """
    from spol.config import load_recipe
    from spol.pipeline import format_comparison, run_pipeline
    from spol.stages.distributed import is_global_zero

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
        )
    if is_global_zero():
        typer.echo(format_comparison(result.metrics))
        typer.echo(f"\nmetrics: {result.metrics_path}\nreport:  {result.report_path}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder; the synthetic data goes to OUT/data."),
    quick: bool = typer.Option(False, "--quick", help="Smaller data and fewer steps (a smoke test, ~3 minutes)."),
    force: bool = typer.Option(False, "--force", help="Regenerate the data and redo every stage."),
) -> None:
    """Make the synthetic benchmark, run the pipeline with the CPU recipe, print SPOL vs CAM."""
    from spol.pipeline import format_comparison, run_demo

    with explained_failures(out):
        result = run_demo(out, quick=quick, force=force)
    typer.echo(format_comparison(result.metrics))
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"\nmetrics: {result.metrics_path}\nreport:  {result.report_path}")
