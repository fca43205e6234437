"""`spol localize`: class, box and mask for image files and folders, from a trained run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from spol.cli._app import app, explained_failures, fail
from spol.rundir import LOCALIZER_FILE

DEFAULT_OUT = Path("localize")


@app.command("localize")
def localize(
    inputs: list[Path] = typer.Argument(
        ...,
        metavar="IMAGE_OR_DIR",
        help="Image files and/or folders; folders are walked recursively in sorted order and every file is tried.",
        show_default=False,
    ),
    run: Path = typer.Option(
        ..., "--run", help="Run folder made by `spol pipeline` (holds localizer.json and the model files)."
    ),
    out: Path = typer.Option(
        DEFAULT_OUT,
        "--out",
        help="Output folder: predictions.jsonl plus <stem>_mask.png and <stem>_overlay.png per image. "
        "Default: ./localize in the current directory (the run folder is left untouched).",
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per network call."),
    device: str = typer.Option(
        "auto", "--device", help="Device of the networks: cpu, cuda, cuda:N, or auto (a GPU when there is one)."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object per image on stdout (image, width, height, class, score, top5, box, mask); "
        "progress and skipped files go to stderr.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs in the output folder."),
) -> None:
    """Localize objects in images: top-5 classes, object mask and box (pixels after EXIF orientation).

    Files that are not readable images are named on stderr and skipped; the exit code is then 1.
    """
    from tqdm import tqdm

    from spol.localization import Localizer, SkippedImage, collect_images, localize_files

    if not run.is_dir():
        raise fail(f"--run {run} is not a folder; pass the run folder of `spol pipeline`")
    if not (run / LOCALIZER_FILE).is_file():
        raise fail(f"{run / LOCALIZER_FILE} does not exist; pass a run folder made by `spol pipeline`")
    try:
        paths = collect_images(inputs, exclude=out)
    except FileNotFoundError as error:
        raise fail(str(error)) from error
    if not paths:
        raise fail(f"no files found in {', '.join(map(str, inputs))}")
    try:
        localizer = Localizer.from_run(run, device=device)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error

    def on_result(record: dict) -> None:
        if as_json:
            typer.echo(json.dumps(record))
        else:
            box = "no object" if record["box"] is None else "box " + " ".join(map(str, record["box"]))
            typer.echo(f"{record['image']}: {record['class']} ({record['score']:.3f}), {box}")

    def on_skip(skipped: SkippedImage) -> None:
        # tqdm.write keeps the progress bar intact.
        tqdm.write(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)

    with explained_failures(out):
        report = localize_files(
            localizer, paths, out, batch_size=batch_size, force=force, on_result=on_result, on_skip=on_skip
        )
    typer.echo(
        f"localized {report.localized} image(s) into {report.out_dir} ({report.predictions.name}); "
        f"skipped {len(report.skipped)}",
        err=True,
    )
    if report.skipped:
        raise typer.Exit(1)
