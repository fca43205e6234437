"""`spol pseudo-masks`: write the pseudo masks of a dataset's training images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spol.cli._app import app, claimed_output, fail
from spol.cli._options import DataOption, FormatOption
from spol.config import PseudoMaskConfig
from spol.rundir import MODEL_FILE, Outputs, model_file

if TYPE_CHECKING:
    from spol.data import ImageRecord


@app.command("pseudo-masks")
def pseudo_masks(
    data: DataOption,
    dataset_format: FormatOption,
    cam: Path = typer.Option(
        ...,
        "--cam",
        metavar="FILE|DIR",
        help=f"The CAM network: a model file, its run folder (train-cam --out, holding {MODEL_FILE}) or a "
        "pipeline run.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder: one PNG per training image (P in red, G in green) and report.json. It must be "
        "new, empty or made by this command, and not inside another run folder.",
    ),
    batch_size: int = typer.Option(
        PseudoMaskConfig.model_fields["batch_size"].default, "--batch-size", min=1, help="Images per forward pass."
    ),
    device: str = typer.Option(
        "auto", "--device", help="Device of the CAM network: cpu, cuda, cuda:N, or auto (a GPU when there is one)."
    ),
    num_workers: int = typer.Option(0, "--num-workers", min=0, help="Image-loading worker processes (0: none)."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Processes computing the Gaussian prior and writing the PNGs (0: this one)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Rewrite existing pseudo masks (by default a rerun skips them and resumes)."
    ),
) -> None:
    """Run the CAM network on every training image and store its pseudo mask (P, Gaussian prior G).

    Unreadable images and NaN CAMs are failures, listed in the report and OUT/report.json.

    Exit code: 0 when the run completes (even with failures), 2 bad arguments, 1 an error.
    """
    try:
        model_path = model_file(cam, stages=("cam",))
    except FileNotFoundError as error:
        raise fail(f"--cam: {error}") from error
    if not data.is_dir():
        raise fail(f"dataset root {data} is not a folder")
    from spol.data import read_dataset
    from spol.models import load_exported_model
    from spol.runtime.prediction import trainer_for_device
    from spol.stages.pseudo_masks import REPORT_NAME, generate_pseudo_masks

    try:
        trainer = trainer_for_device(device)
        model = load_exported_model(model_path)
        dataset = read_dataset(data, dataset_format)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    records = dataset.split("train")
    if not records:
        raise fail(f"the dataset at {data} has no training images")
    with claimed_output(out, _outputs(out, records)):
        try:
            report = generate_pseudo_masks(
                model,
                records,
                out,
                batch_size=batch_size,
                trainer=trainer,
                num_workers=num_workers,
                workers=workers,
                force=force,
            )
        except ValueError as error:
            raise fail(str(error), 1) from error
    summary = report.to_json()
    typer.echo(json.dumps({key: value for key, value in summary.items() if key != "failures"}))
    for failure in report.failed:
        typer.echo(f"failed: {failure.image_id}: {failure.reason}", err=True)
    typer.echo(f"pseudo masks in {out} (report: {out / REPORT_NAME})", err=True)


def _outputs(out: Path, records: Sequence[ImageRecord]) -> Outputs:
    """What `spol pseudo-masks` writes at the top of `out` for `records`: its PNGs' first folders or names, the reports.

    A folder an older spol made without the mark is recognised by its ``source.json`` or ``report.json``.
    """
    from spol.stages.pseudo_masks import REPORT_NAME, SOURCE_NAME, pseudo_mask_path

    tops = {pseudo_mask_path(out, record.image_id).relative_to(out).parts[0] for record in records}
    return Outputs("pseudo-masks", frozenset({REPORT_NAME, SOURCE_NAME, *tops}), proof=(SOURCE_NAME, REPORT_NAME))
