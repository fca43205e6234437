"""Every command's help at 80 columns: nothing cut, no Python type names, -h as --help, texts as written."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from spol.cli._app import app

runner = CliRunner()

TYPE_NAMES = re.compile(r"<(?:bool|str|int|float|path|file|dir|list\[[^>]*\]|[a-z]+ range|[a-z]+(?:,[a-z]+)+)>", re.I)
"""How typer shows an option's Python type: <bool>, <list[str]>, <float range>, <int,int>."""


def _commands(group=None, path=()) -> list[tuple[tuple[str, ...], object]]:
    group = group or typer.main.get_command(app)
    found = [(path, group)]
    for name, command in getattr(group, "commands", {}).items():
        found += _commands(command, (*path, name)) if hasattr(command, "commands") else [((*path, name), command)]
    return found


COMMANDS = _commands()


def _help(path: tuple[str, ...], flag: str = "--help") -> str:
    result = runner.invoke(app, [*path, flag], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_every_command_is_covered() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "data", "data synth", "data summary", "evaluate", "localize", "pipeline", "export"} <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=lambda path: " ".join(path) or "spol")
def test_help_fits_80_columns_and_says_everything(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert _help(path, "-h") == text
    for line in text.splitlines():
        assert len(line) <= 80, line
        assert "…" not in line, line
        if not line.startswith("Usage:"):  # click's "COMMAND [ARGS]..." and "IMAGE...": more than one
            assert "..." not in line, line
        assert not TYPE_NAMES.search(line), line
    command = dict(COMMANDS)[path]
    squeezed = _squeezed(text)
    # Every option's help and the command's own text appear whole, square brackets included
    # (rich markup once ate "[top-1 right, top-5 right]").
    for param in command.params:
        if getattr(param, "help", None):
            assert _squeezed(param.help) in squeezed, param.help
    for paragraph in (command.help or "").split("\n\n"):
        assert _squeezed(paragraph.replace("\b", "")) in squeezed, paragraph


def test_command_list_shows_whole_summaries() -> None:
    text = _help(())
    squeezed = _squeezed(text)
    for name, command in typer.main.get_command(app).commands.items():
        summary = command.help.split("\n\n")[0]
        first_sentence = summary if "." not in summary else summary[: summary.index(".") + 1]
        assert name in text and _squeezed(first_sentence) in squeezed, name
