"""`spol localize`: class, box and mask for image files and folders, from a trained run or the built-in model."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spol.cli._app import app, explained_failures, fail
from spol.rundir import LOCALIZER_FILE

if TYPE_CHECKING:
    from spol.localization import LocalizeFilesReport, Localizer, SkippedImage
    from spol.localization.folder import InputFiles

DEFAULT_OUT = Path("localize")
"""Without --out each run writes into a new folder: ./localize, then ./localize2, ./localize3, ..."""

_InputsArgument = Annotated[
    list[Path],
    typer.Argument(
        metavar="IMAGE_OR_DIR",
        help="Image files and/or folders; folders are walked recursively in sorted order and every file is tried.",
        show_default=False,
    ),
]
_RunOption = Annotated[
    Path | None,
    typer.Option(
        "--run",
        help="Run folder holding localizer.json and its model files (from `spol pipeline`, `train-cam`, "
        "`train-seg` or `evaluate --out`). Without it: spol's built-in ImageNet model (EfficientNet-Lite0 CAM, "
        "1000 ImageNet classes), for everyday photos.",
        show_default=False,
    ),
]
_MethodOption = Annotated[
    str | None,
    typer.Option(
        "--method",
        help="Which of the run's methods localizes: spol, mffcam or cam. Default: the run's choice (the best "
        "on boxed val images; SPOL without them).",
        show_default=False,
    ),
]
_MinScoreOption = Annotated[
    float | None,
    typer.Option(
        "--min-score",
        min=0.0,
        max=1.0,
        help="Report no object below this localization score (default: the run's, 0.5). The score is the "
        "highest object probability in the map (SPOL) or per-location class probability (CAM methods).",
        show_default=False,
    ),
]
_OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output folder: predictions.jsonl plus <stem>_mask.png and <stem>_overlay.png per image. "
        "Default: a new folder per run in the current directory: ./localize, then ./localize2 and so on. "
        "A folder holding other files is refused without --force.",
        show_default=False,
    ),
]
_BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per network call.")]
_DeviceOption = Annotated[
    str, typer.Option("--device", help="Device of the networks: cpu, cuda, cuda:N, or auto (a GPU when there is one).")
]
_JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON object per image on stdout (image, width, height, class, score, top5, "
        "localization_score, box, mask); "
        "progress and skipped files go to stderr.",
    ),
]
_ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace what an earlier localize wrote in --out (its predictions and PNGs, nothing else), and "
        "start over an interrupted one (the same command, rerun, resumes it); write beside other files in "
        "--out, never deleting them. Never writes into a run folder.",
    ),
]


@app.command("localize")
def localize(
    inputs: _InputsArgument,
    run: _RunOption = None,
    method: _MethodOption = None,
    min_score: _MinScoreOption = None,
    out: _OutOption = None,
    batch_size: _BatchSizeOption = 16,
    device: _DeviceOption = "auto",
    as_json: _JsonOption = False,
    force: _ForceOption = False,
) -> None:
    """Localize objects in images: top-5 classes, a localization score, object mask and box.

    Boxes are in pixels after EXIF orientation. An image whose localization score is below --min-score
    gets no box ("no object"). In folders, hidden files are left out and files that are not images are
    skipped; both are counted. The exit code is 1 when a file named on the command line is not an image.
    """
    from spol.fileio import make_numbered_folder, numbered_folder
    from spol.localization import localize_files

    _check_run(run, method)
    target = numbered_folder(DEFAULT_OUT) if out is None else out
    found = _files_to_localize(inputs, target, force=force)
    localizer = _load_localizer(run, method, device, min_score)
    typer.echo(f"localizing with {localizer.description}", err=True)
    with explained_failures(target):
        if out is None:
            target = make_numbered_folder(DEFAULT_OUT)  # another run may have taken the name meanwhile
        report = localize_files(
            localizer,
            found.files,
            target,
            batch_size=batch_size,
            force=force,
            on_result=partial(_print_record, as_json=as_json),
            on_skip=_print_skipped,
        )
    named_failed = [s for s in report.skipped if Path(s.path) in found.named]
    typer.echo(_summary(report, found, named_failed=len(named_failed)), err=True)
    if named_failed:
        raise typer.Exit(1)


def _check_run(run: Path | None, method: str | None) -> None:
    """Refuse a --run that is no run folder, and --method without --run."""
    if run is not None:
        if not run.is_dir():
            raise fail(f"--run {run} is not a folder; pass a run folder holding {LOCALIZER_FILE}")
        if not (run / LOCALIZER_FILE).is_file():
            raise fail(
                f"{run / LOCALIZER_FILE} does not exist; pass a run folder made by `spol pipeline`, `spol train-cam`, "
                "`spol train-seg` or `spol evaluate --out`"
            )
    elif method is not None:
        raise fail("--method chooses among a run's methods; pass --run too")


def _files_to_localize(inputs: list[Path], target: Path, *, force: bool) -> InputFiles:
    """The files to localize, after checking the output folder `target` (before the networks load)."""
    from spol.localization.folder import check_output_folder, find_inputs

    try:
        check_output_folder(target, force=force)
        found = find_inputs(inputs, exclude=target)
    except (OSError, ValueError) as error:
        raise fail(str(error)) from error
    if not found.files:
        hidden = f" ({len(found.hidden)} hidden file(s) left out)" if found.hidden else ""
        raise fail(f"no files found in {', '.join(map(str, inputs))}{hidden}")
    return found


def _load_localizer(run: Path | None, method: str | None, device: str, min_score: float | None) -> Localizer:
    """The run's localizer, or spol's built-in ImageNet one without a run; the run's min score unless given."""
    from spol.localization import Localizer

    score_option = {} if min_score is None else {"min_score": min_score}
    try:
        if run is None:
            return Localizer.imagenet(device=device, **score_option)
        return Localizer.from_run(run, method=method, device=device, **score_option)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error


def _print_record(record: dict[str, Any], *, as_json: bool) -> None:
    """Print one image's record on stdout: as JSON, or as one line (class, score, box)."""
    if as_json:
        typer.echo(json.dumps(record))
    else:
        box = "no object" if record["box"] is None else "box " + " ".join(map(str, record["box"]))
        typer.echo(
            f"{record['image']}: {record['class']} ({record['score']:.3f}), {box} "
            f"(localization score {record['localization_score']:.2f})"
        )


def _print_skipped(skipped: SkippedImage) -> None:
    """Say on stderr which file was skipped and why."""
    from tqdm import tqdm

    # tqdm.write keeps the progress bar intact.
    tqdm.write(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)


def _summary(report: LocalizeFilesReport, found: InputFiles, *, named_failed: int) -> str:
    """The closing line: how many images were localized, resumed, skipped and left out, and where."""
    resumed = f", {report.resumed} of them by the run that was interrupted" if report.resumed else ""
    return (
        f"localized {report.localized} image(s) into {report.out_dir} ({report.predictions.name}){resumed}; "
        f"skipped {len(report.skipped)} file(s) that are not images"
        + (f" ({named_failed} named on the command line)" if named_failed else "")
        + (f" and left out {len(found.hidden)} hidden file(s)" if found.hidden else "")
    )
