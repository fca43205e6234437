"""`spol evaluate-maps`: the WSOL protocol's numbers for a folder of saved score maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from spol.cli._app import app, fail
from spol.data.records import DatasetFormatError, ImageRecord
from spol.data.wsol import read_wsol_metadata
from spol.evaluation import (
    LOC_IOU,
    EvaluationResult,
    NpyScoreMaps,
    evaluate_scoremaps,
    prediction_hits,
    read_top5_predictions,
)
from spol.scoremaps import ScoreMapError

_MAX_PROBLEMS_SHOWN = 10


def _iou_levels(values: list[str]) -> tuple[int, ...]:
    levels: list[int] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                level = int(part)
            except ValueError:
                raise fail(f"--iou-thresholds: {part!r} is not an integer percent such as 50") from None
            if not 0 < level <= 100:
                raise fail(f"--iou-thresholds: {level} is not a percent in (0, 100]")
            levels.append(level)
    if not levels:
        raise fail("--iou-thresholds: give at least one level, e.g. 30,50,70")
    return tuple(levels)


def _table(result: EvaluationResult) -> str:
    mode = "multi-contour (MaxBoxAccV2)" if result.multi_contour else "single contour (MaxBoxAcc)"
    lines = [f"images        {result.num_images}", f"contour mode  {mode}"]
    if result.num_resized:
        lines.append(f"resized maps  {result.num_resized} (not 224x224; bilinear)")
    if result.max_box_acc:
        lines.append("IoU   box acc  best threshold")
        for level, acc in result.max_box_acc.items():
            lines.append(f"{level:<5d} {acc:7.2f}  {result.best_threshold[level]:.3f}")
        lines.append(f"mean  {result.max_box_acc_mean:7.2f}")
    if result.pxap is not None:
        lines.append(f"PxAP  {result.pxap:7.2f}")
    if result.top1_loc is not None:
        lines.append(
            f"Top-1 Loc {result.top1_loc:.2f}  Top-5 Loc {result.top5_loc:.2f}  "
            f"GT-known Loc {result.gt_known_loc:.2f}  (threshold best at IoU {LOC_IOU} on this split)"
        )
    return "\n".join(lines)


def _check_arguments(
    metadata: Path,
    scoremaps: Path,
    masks: Path | None,
    predictions: Path | None,
    levels: tuple[int, ...],
    cam_curve_interval: float,
) -> None:
    """Exit code 2 unless each folder argument is a folder, and the other arguments fit together."""
    if not metadata.is_dir():
        raise fail(f"--metadata {metadata} is not a folder; pass a split folder such as metadata/CUB/test")
    if not scoremaps.is_dir():
        raise fail(f"--scoremaps {scoremaps} is not a folder of <image_id>.npy files")
    if masks is not None and not masks.is_dir():
        raise fail(f"--masks {masks} is not a folder; pass the root the mask paths of localization.txt are relative to")
    if predictions is not None and LOC_IOU not in levels:
        raise fail(f"--predictions needs IoU level {LOC_IOU} in --iou-thresholds")
    if not 0 < cam_curve_interval < 1:
        raise fail(f"--cam-curve-interval must lie in (0, 1), got {cam_curve_interval}")


def _read_records(metadata: Path, masks: Path | None) -> list[ImageRecord]:
    """The split's records; exit code 2 on any problem in the metadata (the numbers would not be the protocol's)."""
    try:
        dataset = read_wsol_metadata(metadata, mask_root=masks, probe_sizes=False, progress=False)
    except DatasetFormatError as error:
        raise fail(str(error)) from error
    if dataset.problems:
        shown = "\n  ".join(str(p) for p in dataset.problems[:_MAX_PROBLEMS_SHOWN])
        more = len(dataset.problems) - _MAX_PROBLEMS_SHOWN
        raise fail(
            f"{len(dataset.problems)} problems in the metadata {metadata} (numbers would not match the protocol):\n  "
            + shown
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    return list(dataset.records)


def _class_hits(predictions: Path, records: list[ImageRecord]) -> np.ndarray:
    """Top-1 / top-5 class hits per record from the predictions CSV (an image without one is an error)."""
    top5 = read_top5_predictions(predictions)
    return prediction_hits([r.image_id for r in records], [r.label for r in records], top5)


@app.command("evaluate-maps", context_settings={"allow_extra_args": True})
def evaluate_maps(
    ctx: typer.Context,
    metadata: Path = typer.Option(
        ...,
        "--metadata",
        help="wsolevaluation metadata split folder (e.g. metadata/CUB/test) holding image_ids.txt, "
        "class_labels.txt, image_sizes.txt and localization.txt.",
    ),
    scoremaps: Path = typer.Option(
        ...,
        "--scoremaps",
        help="Folder of score maps: <scoremaps>/<image_id>.npy (e.g. 001.X/y.jpg.npy, as wsolevaluation), "
        "2-D float in [0, 1]; maps not 224x224 are resized bilinearly and counted.",
    ),
    masks: Path | None = typer.Option(
        None,
        "--masks",
        help="Root folder of the mask_path / ignore_path entries of localization.txt; computes PxAP.",
    ),
    cam_curve_interval: float = typer.Option(
        0.01, "--cam-curve-interval", help="Step of the score thresholds arange(0, 1, step)."
    ),
    iou_thresholds: list[str] = typer.Option(
        ["30,50,70"],
        "--iou-thresholds",
        help="IoU levels in percent: --iou-thresholds 30 50 70 (or 30,50,70).",
    ),
    multi_contour: bool = typer.Option(
        False, "--multi-contour", help="Count every contour's box (MaxBoxAccV2) instead of the largest contour's."
    ),
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        help="CSV of image_id followed by 5 predicted class indices (best first) for Top-1/Top-5/GT-known Loc. "
        f"These use the threshold best at IoU {LOC_IOU} on this same split, in the chosen contour mode.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        help="Evaluation threads (default: CPU count; 0 or 1: none).",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print exactly one JSON object on stdout: num_images, max_box_acc, max_box_acc_mean, "
        "best_cam_threshold, plus pxap with --masks and top1_loc, top5_loc, gt_known_loc "
        "with --predictions.",
    ),
) -> None:
    """Evaluate saved score maps with the WSOL protocol (MaxBoxAcc, MaxBoxAccV2, PxAP), exactly as wsolevaluation.

    Exit code 2 on a bad map (missing, NaN, outside [0, 1], not 2-D), bad metadata or bad arguments.
    """
    # `--iou-thresholds 30 50 70`: click takes the first value, the others arrive as extra arguments.
    if ctx.args and not all(arg.replace(",", "").isdigit() for arg in ctx.args):
        raise fail(f"unexpected arguments: {' '.join(ctx.args)}")
    levels = _iou_levels([*iou_thresholds, *ctx.args])
    _check_arguments(metadata, scoremaps, masks, predictions, levels, cam_curve_interval)
    records = _read_records(metadata, masks)
    try:
        result = evaluate_scoremaps(
            records,
            NpyScoreMaps(scoremaps),
            cam_curve_interval=cam_curve_interval,
            iou_thresholds=levels,
            contours=("every",) if multi_contour else ("largest",),
            masks=masks is not None,
            class_hits=None if predictions is None else _class_hits(predictions, records),
            workers=workers,
            progress=True,
        )
    except (ScoreMapError, FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    if as_json and result.num_resized:
        typer.echo(f"note: {result.num_resized} map(s) were not 224x224 and were resized (bilinear)", err=True)
    typer.echo(json.dumps(result.to_json()) if as_json else _table(result))
