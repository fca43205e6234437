"""The `spol` command line. Commands parse and check arguments, then call the library."""

from __future__ import annotations

from spol.cli._app import app


def main() -> None:
    """Entry point of the `spol` console script."""
    app()


__all__ = ["app", "main"]
