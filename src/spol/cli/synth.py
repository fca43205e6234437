"""`spol data synth`: draw the synthetic WSOL benchmark (CUB-200-2011 layout)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from spol.cli._app import data_app, explained_failures, fail
from spol.data.synthetic import SYNTHETIC_PRESETS, generate_synthetic
from spol.rundir import refuse_run_folder


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(
        ...,
        help="Output folder: empty or missing, or holding this same generation (left as is) or an interrupted "
        "one (completed); anything else needs --force.",
    ),
    preset: str = typer.Option(
        "demo",
        help=f"Starting config: {', '.join(sorted(SYNTHETIC_PRESETS))} ('demo': 10 classes x (150 train + 50 test), "
        "160 px, objects 10-45 % of the image; 'robust': 192-256 px, objects 5-25 %, more clutter). "
        "The options below override it.",
    ),
    seed: int | None = typer.Option(None, help="Seed; the same seed and options give byte-identical files."),
    classes: int | None = typer.Option(None, "--classes", help="Number of classes (one part shape x colour each)."),
    train: int | None = typer.Option(None, "--train", help="Training images per class."),
    test: int | None = typer.Option(None, "--test", help="Test images per class."),
    size: int | None = typer.Option(None, "--size", help="Image side in pixels (images are square)."),
    size_max: int | None = typer.Option(
        None, "--size-max", help="Largest image side: each image draws its side in [--size, --size-max]."
    ),
    object_area: tuple[float, float] | None = typer.Option(
        None, "--object-area", metavar="MIN MAX", help="Object area as a fraction of the image, e.g. 0.1 0.45."
    ),
    part_area: tuple[float, float] | None = typer.Option(
        None, "--part-area", metavar="MIN MAX", help="Class-part area as a fraction of the object's, e.g. 0.03 0.06."
    ),
    clutter: tuple[int, int] | None = typer.Option(
        None, "--clutter", metavar="MIN MAX", help="Number of neutral distractor shapes per image."
    ),
    workers: int | None = typer.Option(
        None, help="Threads drawing images (default: CPU count, at most 4); the files do not depend on it."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty OUT, overwriting its files."),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Show progress on stderr (a bar on a terminal, a line every 30 s otherwise).",
    ),
) -> None:
    """Draw the synthetic WSOL benchmark into OUT in the CUB-200-2011 layout.

    Each image holds one object on a photo background. Two cues tell the classes apart, as plumage and
    head do for birds: the body's texture, cut from a picture of the class's own (which other classes
    show as background), and a small coloured part, of one shape and colour per class.

    Masks are exact, boxes are their tight boxes; train/test as in CUB (no val split).
    """
    if preset not in SYNTHETIC_PRESETS:
        raise fail(f"--preset must be one of {sorted(SYNTHETIC_PRESETS)}, got {preset!r}")
    base = SYNTHETIC_PRESETS[preset]
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("seed", seed),
            ("num_classes", classes),
            ("train_per_class", train),
            ("test_per_class", test),
            ("object_area", object_area),
            ("part_area", part_area),
            ("clutter", clutter),
        )
        if value is not None
    }
    if size is not None or size_max is not None:
        low = size if size is not None else base.image_size[0]
        high = size_max if size_max is not None else (low if size is not None else base.image_size[1])
        changes["image_size"] = (low, high)
    with explained_failures(out):
        config = dataclasses.replace(base, **changes)
        refuse_run_folder(out, option="OUT")
        generate_synthetic(out, config, force=force, progress=progress, workers=workers)
    typer.echo(f"wrote {config.num_classes * (config.train_per_class + config.test_per_class)} images to {out}")
