"""The typer application; each command module registers its commands on import."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spol.cli._group import CommandGroup
from spol.fileio import LOG_FORMAT

if TYPE_CHECKING:
    from spol.rundir import Outputs

# Plain help (rich_markup_mode=None): rich's three-column boxes cut long words at 80 columns and read
# square brackets in help texts as markup. -h is --help in every command (click passes it down).
app = typer.Typer(
    name="spol",
    cls=CommandGroup,
    help="SPOL weakly supervised object localization: train on image-level labels, "
    "evaluate under the WSOL protocol, and localize new images (class, box, mask).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(
    cls=CommandGroup, help="Inspect and generate datasets.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(data_app, name="data")


DEBUG_VARIABLE = "SPOL_DEBUG"
"""Set to 1 (or pass --debug) to see the traceback of an unexpected error."""


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"spol {version('spol-wsol')}")
        except PackageNotFoundError:  # run from a source tree that was not installed
            from spol import __version__

            typer.echo(f"spol {__version__}")
        raise typer.Exit()


@app.callback()
def _configure(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log spol's debug messages and Lightning's (anywhere on the line)."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Log warnings and errors only, no progress (anywhere on the line)."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help=f"Show the traceback of an unexpected error (or set {DEBUG_VARIABLE}=1; anywhere on the line).",
    ),
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"
    logging.basicConfig(format=LOG_FORMAT, datefmt="%H:%M:%S")
    level = logging.WARNING if quiet else logging.INFO
    # Levels set apart from basicConfig, which changes nothing once the root logger has a handler. -v shows
    # spol's debug messages, not those of every library (Pillow logs each PNG chunk). The console handler
    # gets the level too: a stage lowers spol's to INFO while it copies the lines to its train.log.
    logging.getLogger().setLevel(level)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.DEBUG if verbose else level)
    logging.getLogger("spol").setLevel(logging.DEBUG if verbose else logging.NOTSET)
    logging.getLogger("spol.progress").setLevel(logging.WARNING if quiet else logging.NOTSET)
    # Lightning prints its messages with its own console handler; passing them on to ours too would
    # show each one twice. (Set before Lightning is imported, which leaves propagation alone.)
    logging.getLogger("lightning").propagate = False


def quiet_other_ranks() -> None:
    """Under DDP every process runs the command: only global rank 0 logs below warnings and shows progress."""
    from spol.runtime.distributed import is_global_zero

    if not is_global_zero():
        for name in ("", "spol", "spol.progress"):  # spol's level: set by -v
            logging.getLogger(name).setLevel(logging.WARNING)


def explain_failure(error: BaseException, out: Path | None = None) -> str | None:
    """The one line that tells a user what went wrong and what to do, or None for an unexpected error.

    Errors the library raises for bad input (ValueError, OSError with our message, a folder in use)
    keep their message; system errors on a path (disk full, permissions, a file in the way) are
    explained; any error while `out`'s disk is full is reported as that (torch's "unexpected pos").
    """
    from spol.fileio import disk_full, explain_os_error
    from spol.rundir import FolderInUseError

    if out is not None and disk_full(out):
        return f"disk full under {out}: free some space or choose an output on another disk"
    if isinstance(error, OSError) and error.errno is not None and error.filename is not None:
        return explain_os_error(error)
    if isinstance(error, ValueError | OSError | FolderInUseError):
        return str(error)
    return None


@contextmanager
def claimed_output(out: Path, outputs: Outputs) -> Iterator[None]:
    """The command's --out folder, claimed for the block on the writing rank (`spol.rundir.claimed_folder`).

    A refusal (another run's folder, a user's files) is one line and exit code 2; a folder made here
    goes again when the block fails before writing into it.
    """
    from spol.rundir import claimed_folder
    from spol.runtime.distributed import is_global_zero

    with ExitStack() as stack:
        if is_global_zero():
            try:
                stack.enter_context(claimed_folder(out, outputs))
            except OSError as error:
                raise fail(explain_failure(error, out) or str(error)) from error
        yield


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` to stderr and return the Exit to raise with `code`."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def explained_failures(out: Path | None = None) -> Iterator[None]:
    """Turn an error `explain_failure` explains into its one line and exit code 2; others propagate."""
    from spol.runtime.interrupt import requested_signal

    try:
        yield
    except Exception as error:
        message = explain_failure(error, out)
        if message is None or requested_signal() is not None:  # a stop signal caused it: `main` says so
            raise
        raise fail(message) from error


# Command modules: imported for their registrations.
from spol.cli import commands  # noqa: E402,F401
