"""`spol export`: a trained run's localizer as one ONNX or TorchScript file, preprocessing included."""

from __future__ import annotations

from pathlib import Path

import typer

from spol.cli._app import app, explain_failure, fail
from spol.fileio import remove_temporaries_of
from spol.rundir import LOCALIZER_FILE, refuse_run_folder


@app.command("export")
def export(
    run: Path = typer.Option(
        ..., "--run", help="Run folder made by `spol pipeline` (holds localizer.json and the model files)."
    ),
    export_format: str = typer.Option(
        "onnx",
        "--format",
        help="onnx (opset 18; run it with onnxruntime, no spol or torch needed) or torchscript (torch.jit.load).",
    ),
    out: Path = typer.Option(..., "--out", help="The file to write, e.g. localizer.onnx."),
    method: str | None = typer.Option(
        None,
        "--method",
        help="Which of the run's methods to export: spol, mffcam or cam. Default: the run's choice.",
        show_default=False,
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace --out if it exists (never a file in a run folder: export outside it)."
    ),
) -> None:
    """Export the map network (SPOL's segmentation network or a CAM network) and the classifier, as one file.

    The file takes `image`, one H x W x 3 uint8 RGB array of any size, and returns `scoremap` (H x W
    float32 in [0, 1], the map `spol localize` thresholds), `class_scores` (K float32 softmax, in the
    order of localizer.json's class_names), `protocol_scoremap` (224 x 224, the map the box is
    taken from) and `localization_score` (below min_score: no object). Mask and box: the method's
    threshold and rule in localizer.json, see the README.
    """
    from spol.localization import Localizer
    from spol.localization.export import EXPORT_FORMATS, export_localizer

    if export_format not in EXPORT_FORMATS:
        raise fail(f"--format {export_format!r} is not an export format; choose one of {', '.join(EXPORT_FORMATS)}")
    if not run.is_dir():
        raise fail(f"--run {run} is not a folder; pass the run folder of `spol pipeline`")
    if not (run / LOCALIZER_FILE).is_file():
        raise fail(f"{run / LOCALIZER_FILE} does not exist; pass a run folder made by `spol pipeline`")
    if out.is_dir():
        raise fail(f"--out {out} is a folder; pass the path of the file to write, e.g. {out / 'localizer.onnx'}")
    try:
        refuse_run_folder(out)
    except FileExistsError as error:
        raise fail(str(error)) from error
    if (out.exists() or out.is_symlink()) and not force:
        raise fail(f"{out} exists; pass --force to replace it or choose another --out")
    try:
        remove_temporaries_of(out)  # left by an export that was killed
        localizer = Localizer.from_run(run, method=method, device="cpu")
        export_localizer(localizer, out, export_format=export_format)  # type: ignore[arg-type]
    except (ImportError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    except Exception as error:
        message = explain_failure(error, out.parent)
        if message is None:
            raise
        raise fail(message) from error
    typer.echo(f"exported the localizer of {run} to {out} ({export_format}, {out.stat().st_size / 1e6:.1f} MB)")
    typer.echo(
        f"method {localizer.method}: threshold {localizer.threshold} ({localizer.threshold_rule} rule), "
        f"min_score {localizer.min_score}; class names: {run / LOCALIZER_FILE}"
    )
