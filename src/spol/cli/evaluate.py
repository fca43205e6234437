"""`spol evaluate`: trained networks on a dataset's test split, without training (ours or the authors' files)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from spol.cli._app import app, claimed_output, explained_failures, fail, quiet_other_ranks
from spol.cli._options import DEFAULT_RECIPE, DataOption, FormatOption, RecipeOption, SetOption

_SegmenterOption = Annotated[
    Path,
    typer.Option(
        "--segmenter",
        metavar="FILE|DIR",
        help="Segmentation network: a spol model.pt, its run folder (train-seg --out) or a pipeline run; with "
        "--release the authors' file.",
    ),
]
_ReleaseOption = Annotated[
    bool,
    typer.Option(
        "--release", help="--segmenter is a state dict of the authors' release (e.g. cub200-seg/out/model-8)."
    ),
]
_ClassifierOption = Annotated[
    Path | None,
    typer.Option(
        "--classifier",
        metavar="FILE|DIR",
        help="The network that names the classes, for Top-1/Top-5 Loc: a classifier or CAM network's model file "
        "(spol.models.export_model), its run folder or a pipeline run.",
    ),
]
_ClassPredictionsOption = Annotated[
    Path | None,
    typer.Option(
        "--class-predictions",
        metavar="FILE",
        help="The release's top1top5.npy (image path -> [top-1 right, top-5 right]) for Top-1/Top-5 Loc; "
        "read without running pickled code.",
    ),
]
_ThresholdOption = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="Score-map threshold to apply instead of choosing it on val (the protocol's cut relative to each "
        "map's maximum); the release protocol uses it as its fixed 'map > T' (default there 0.2, CUB's).",
    ),
]
_ReleaseProtocolOption = Annotated[
    bool,
    typer.Option(
        "--release-protocol",
        help="Also compute the numbers exactly as the release's cub200-seg/test.py: OpenCV decoding, normalise, "
        "resize 256, centre crop 224, align_corners=True, fixed threshold, IoU > 0.5 without the +1, images "
        "without a contour skipped (key release_protocol).",
    ),
]
_OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="DIR",
        help="Write OUT/metrics.json, and with --classifier OUT/localizer.json (for `spol localize --run OUT`). "
        "OUT must be new, empty or made by this command, and not inside another run folder.",
    ),
]
_JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


@app.command("evaluate")
def evaluate_command(
    data: DataOption,
    data_format: FormatOption,
    segmenter: _SegmenterOption,
    release: _ReleaseOption = False,
    classifier: _ClassifierOption = None,
    class_predictions: _ClassPredictionsOption = None,
    threshold: _ThresholdOption = None,
    release_protocol: _ReleaseProtocolOption = False,
    recipe: RecipeOption = DEFAULT_RECIPE,
    overrides: SetOption = None,
    out: _OutOption = None,
    as_json: _JsonOption = False,
) -> None:
    """Evaluate a trained segmentation network (and classes) on the test split, without training.

    The fair protocol's numbers (threshold chosen on val unless --threshold, MaxBoxAcc, MaxBoxAccV2, PxAP,
    GT-known / Top-1 / Top-5 Loc), and with --release-protocol the release's own numbers beside them.
    The recipe gives the input size, the protocol settings, the val hold-out and the devices: pass the one
    the networks were trained with (--recipe cub for the authors' CUB files).
    """
    from spol.config import load_recipe
    from spol.pipeline.evaluate import evaluate_networks
    from spol.runtime.distributed import is_global_zero

    quiet_other_ranks()
    _check_inputs(data, segmenter, classifier, class_predictions)
    with explained_failures(out), _claimed(out):
        result = evaluate_networks(
            data,
            data_format,
            load_recipe(recipe, overrides or ()),
            segmenter=segmenter,
            release=release,
            classifier=classifier,
            class_predictions=class_predictions,
            threshold=threshold,
            release_protocol=release_protocol,
            out_dir=out,
        )
    if is_global_zero():
        _print_result(result, as_json=as_json)


def _check_inputs(data: Path, segmenter: Path, classifier: Path | None, class_predictions: Path | None) -> None:
    """Refuse a path that does not exist, and two class sources."""
    for name, path in (
        ("--data", data),
        ("--segmenter", segmenter),
        ("--classifier", classifier),
        ("--class-predictions", class_predictions),
    ):
        if path is not None and not path.exists():
            raise fail(f"{name} {path} does not exist")
    if classifier is not None and class_predictions is not None:
        raise fail("give --classifier or --class-predictions, not both")


def _print_result(result: dict[str, Any], *, as_json: bool) -> None:
    """Print the result as one JSON object, or one line per headline number plus the release protocol's."""
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key in ("top1_loc", "top5_loc", "gt_known_loc", "max_box_acc_v2", "pxap", "threshold"):
        value = result.get(key)
        typer.echo(f"{key:<16}{'-' if value is None else f'{value:.2f}'}")
    if "release_protocol" in result:
        typer.echo("release protocol: " + json.dumps(result["release_protocol"]))


def _claimed(out: Path | None) -> AbstractContextManager[None]:
    """`out` claimed as the folder of `spol evaluate` (metrics.json, localizer.json, segmenter.pt) while it runs."""
    from spol.pipeline.evaluate import RELEASE_SEGMENTER_FILE
    from spol.rundir import LOCALIZER_FILE, METRICS_FILE, Outputs

    if out is None:
        return nullcontext()
    names = frozenset({METRICS_FILE, LOCALIZER_FILE, RELEASE_SEGMENTER_FILE})
    return claimed_output(out, Outputs("evaluate", names, proof=(LOCALIZER_FILE,)))
