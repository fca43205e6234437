"""The `spol` command line. Commands parse and check arguments, then call the library."""

from __future__ import annotations

import os
import sys

import typer

from spol.cli._app import DEBUG_VARIABLE, app


def main() -> None:
    """Entry point of the `spol` console script.

    An error no command foresaw ends in one line and exit code 1; its traceback is shown with
    ``--debug`` or ``SPOL_DEBUG=1``.
    """
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE) == "1" or "--debug" in sys.argv:
            raise
        typer.echo(
            f"error: {type(error).__name__}: {error} (rerun with --debug or {DEBUG_VARIABLE}=1 for the traceback)",
            err=True,
        )
        sys.exit(1)


__all__ = ["app", "main"]
