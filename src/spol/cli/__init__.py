"""The `spol` command line. Commands parse and check arguments, then call the library."""

from __future__ import annotations

import os
import sys

import typer

from spol.cli._app import DEBUG_VARIABLE, app


def main() -> None:
    """Entry point of the `spol` console script.

    An error no command foresaw ends in one line and exit code 1; its traceback is shown with
    ``--debug`` or ``SPOL_DEBUG=1``. SIGTERM and SIGINT (Ctrl-C) stop the command at a safe point
    (`spol.runtime.interrupt`) with exit code 143 / 130 and say how to resume.
    """
    from spol.runtime.interrupt import Interrupted, requested_signal, stop_on_signals

    try:
        with stop_on_signals():
            try:
                app()
            except Exception:
                # An error caused by the stop (a loader worker ended by the same signal) is the stop.
                signum = requested_signal()
                if signum is None:
                    raise
                raise Interrupted(signum) from None
    except Interrupted as stop:
        typer.echo(f"{stop}: files being written were discarded; rerun the same command to resume", err=True)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:  # Ctrl-C before the handler is in place
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
