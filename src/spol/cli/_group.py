"""spol's command groups: help that reads well at 80 columns, and -v/-q anywhere on the command line."""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup

VERBOSITY_FLAGS = ("-v", "--verbose", "-q", "--quiet", "--debug")
"""Options of the whole program that may stand anywhere on the command line."""


def _default_metavar(param: Any) -> str:
    """The metavar argparse would give, the name in capitals (``--batch-size BATCH_SIZE``), not a type (``<int>``)."""
    long_names = [name for name in param.opts if name.startswith("--")]
    return (long_names[0][2:] if long_names else param.name).replace("-", "_").upper()


def _no_type(ctx: Any) -> None:
    return None


class CommandGroup(TyperGroup):
    """spol's command groups: -v/-q/--debug anywhere on the line, and command summaries wrapped, never cut."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for command in self.commands.values():
            for param in command.params:
                if param.metavar is None and not getattr(param, "is_flag", False):
                    param.metavar = _default_metavar(param)
                if isinstance(param, TyperArgument):
                    # typer prints an argument's Python type beside its name ("IMAGE <list[Path]>").
                    param.display_type_rich = _no_type  # type: ignore[method-assign]

    # ctx and formatter are click's Context and HelpFormatter, which newer typer versions vendor.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the whole command line: move -v/-q/--debug to the program's options
            end = args.index("--") if "--" in args else len(args)
            flags = [arg for arg in args[:end] if arg in VERBOSITY_FLAGS]
            args = [*flags, *(arg for arg in args[:end] if arg not in VERBOSITY_FLAGS), *args[end:]]
        return super().parse_args(ctx, args)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # click cuts each summary to fit one line ("Train the CAM network (MFF-Net #1, recipe..."): wrap it.
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


__all__ = ["VERBOSITY_FLAGS", "CommandGroup"]
