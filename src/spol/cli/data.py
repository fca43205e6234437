"""`spol data summary`: what a dataset folder holds and every problem found while reading it."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from spol.cli._app import data_app, fail
from spol.cli._options import FormatOption
from spol.data import DatasetFormatError, read_dataset, summarize


class SplitName(str, Enum):
    """The `--split` choices."""

    train = "train"
    val = "val"
    test = "test"


@data_app.command("summary")
def summary(
    root: Annotated[
        Path,
        typer.Argument(
            help="Dataset folder: CUB_200_2011/, the wsolevaluation metadata root, the ImageNet folder, "
            "the folder holding labels.csv (or the CSV file itself), or the folder of class folders.",
            show_default=False,
        ),
    ],
    format: FormatOption,
    split: SplitName | None = typer.Option(
        None,
        "--split",
        metavar="train|val|test",
        help="Count only this split (train, val or test); reading problems are all listed.",
    ),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Also decode every image fully (slow); undecodable images are problems and leave the counts.",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Threads reading and decoding images. Default: 4 per CPU core, at most 32."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print exactly one JSON object on stdout: format, images (per split), classes, boxes, "
        "images_with_masks, problems (each {problem, path or line}).",
    ),
) -> None:
    """Read a dataset and print images per split, classes, boxes, images with masks and every problem.

    Exit code 0 when the dataset could be read (whatever its problems), 2 when ROOT is not a
    dataset of that format (the message names the missing file).
    """
    if not root.exists():
        raise fail(f"{root} does not exist; pass the dataset folder")
    try:
        dataset = read_dataset(root, format, workers=workers)
    except (DatasetFormatError, FileNotFoundError) as error:
        raise fail(f"cannot read {root} as {format}: {error}") from error
    result = summarize(dataset, verify=verify, workers=workers, split=split.value if split else None)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"format: {result['format']}  ({dataset.root})")
    images = result["images"]
    per_split = ", ".join(f"{name} {count}" for name, count in images.items()) or "none"
    typer.echo(f"images: {sum(images.values())} ({per_split})")
    typer.echo(f"classes: {result['classes']}")
    typer.echo(f"boxes: {result['boxes']}")
    typer.echo(f"images with masks: {result['images_with_masks']}")
    typer.echo(f"problems: {len(result['problems'])}")
    for problem in result["problems"]:
        where = problem.get("line") or problem.get("path")
        typer.echo(f"  {where}: {problem['problem']}" if where else f"  {problem['problem']}")
