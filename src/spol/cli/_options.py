"""Options several commands take, defined once so that they mean the same in every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spol.cli._app import fail
from spol.config import SHIPPED_RECIPES
from spol.data.formats import FORMATS

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        metavar="DIR",
        help="Dataset folder: CUB_200_2011/, the wsolevaluation metadata root, the ImageNet folder, "
        "the folder holding labels.csv, or the folder of class folders (see `spol data summary`).",
        show_default=False,
    ),
]


def _checked_format(value: str) -> str:
    # A callback rather than a Literal choice: click's choice error is a five-line box, ours is one line.
    if value not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        metavar="|".join(FORMATS),
        callback=_checked_format,
        help="cub: CUB-200-2011 as distributed; wsol: wsolevaluation metadata; imagenet: ILSVRC train/ and val/ "
        "(val is the test split); csv: images plus labels.csv (image,label,x0,y0,x1,y1[,split]); "
        "imagefolder: root/<class>/<image> plus an optional boxes.csv (image,x0,y0,x1,y1).",
        show_default=False,
    ),
]
RecipeOption = Annotated[
    str,
    typer.Option(
        "--recipe",
        "-r",
        metavar="NAME|FILE",
        help=f"Recipe: a shipped name ({', '.join(SHIPPED_RECIPES)}) or a YAML file. cub and imagenet are the "
        "paper's recipes, cpu a small CPU recipe (EfficientNet-Lite0, 128 px crops).",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override one recipe key, e.g. --set cam.lr=0.01 --set trainer.devices=2 (repeatable; values are YAML).",
        show_default=False,
    ),
]
DEFAULT_RECIPE = "cpu"
"""The recipe of every command that takes `--recipe` when it is not given."""
