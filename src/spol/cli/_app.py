"""The typer application; each command module registers its commands on import."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="spol",
    help="SPOL weakly supervised object localization: train on image-level labels, "
    "evaluate under the WSOL protocol, and localize new images (class, box, mask).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and generate datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Lightning prints its messages with its own console handler; passing them on to ours too would
    # show each one twice. (Set before Lightning is imported, which leaves propagation alone.)
    logging.getLogger("lightning").propagate = False


def quiet_other_ranks() -> None:
    """Under DDP every process runs the command: only global rank 0 logs below warnings on the console."""
    from spol.stages.distributed import is_global_zero

    if not is_global_zero():
        logging.getLogger().setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` to stderr and return the Exit to raise with `code`."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# Command modules: imported for their registrations.
from spol.cli import commands  # noqa: E402,F401
