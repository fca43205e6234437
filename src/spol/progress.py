"""Progress of a long step: a tqdm bar on a terminal, a log line every so often anywhere else.

A bar drawn into a pipe or a log file is a wall of carriage returns; a silent step looks hung.
So `Progress` asks where stderr goes: on a terminal it draws tqdm's bar, elsewhere (a pipe, CI,
``nohup``) it logs ``"checking images: 1200/5000 (24%), 41.3 img/s, about 1m32s left"`` every
`LOG_EVERY_S` seconds. ``logging.getLogger("spol.progress").setLevel(logging.WARNING)`` turns both
off (``spol -q`` does).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from tqdm import tqdm

_Item = TypeVar("_Item")

LOG_EVERY_S = 30.0
"""Seconds between two progress lines off a terminal."""

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``"7s"``, ``"2m05s"`` or ``"1h02m"``."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """Counts the finished items of a step of `total` items and shows how far it is.

    Use it as a context manager and call `update` as items finish::

        with Progress(len(paths), "checking images") as progress:
            for path in paths:
                check(path)
                progress.update()

    Args:
        total: items in the step (None when unknown: no percentage or time left).
        description: what the step does, the start of every line.
        unit: what an item is, for the rate.
        enabled: False shows nothing (the caller's ``progress=False``).
        every: seconds between two log lines off a terminal.
        leave: keep the finished bar on the terminal.
        bar: draw the bar on a terminal; False when another one is there already (Lightning's).
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        *,
        unit: str = "img",
        enabled: bool = True,
        every: float = LOG_EVERY_S,
        leave: bool = False,
        bar: bool = True,
    ) -> None:
        self.total, self.description, self.unit, self.every = total, description, unit, every
        self.done = 0
        self._started = self._last_line = time.monotonic()
        # The logger's own level, not the effective one: with logging left unconfigured (WARNING) a bar still shows.
        shown = enabled and total != 0 and logger.level <= logging.INFO
        self._bar: tqdm | None = None
        self._lines = shown and not sys.stderr.isatty()
        if shown and bar and not self._lines:
            self._bar = tqdm(total=total, desc=description, unit=unit, leave=leave, dynamic_ncols=True)

    def update(self, count: int = 1) -> None:
        """Count `count` more finished items."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._lines and time.monotonic() - self._last_line >= self.every:
            self._last_line = time.monotonic()
            logger.info("%s", self.line())

    def line(self) -> str:
        """Where the step stands, e.g. ``"checking images: 1200/5000 (24%), 41.3 img/s, about 1m32s left"``."""
        seconds = time.monotonic() - self._started
        rate = self.done / seconds if seconds > 0 else 0.0
        if not self.total:
            return f"{self.description}: {self.done} {self.unit}, {rate:.1f} {self.unit}/s"
        left = (self.total - self.done) / rate if rate > 0 else None
        return (
            f"{self.description}: {self.done}/{self.total} ({self.done / self.total:.0%}), {rate:.1f} {self.unit}/s"
            + (f", about {format_duration(left)} left" if left is not None else "")
        )

    def close(self) -> None:
        """Remove the bar (a finished step's summary is its caller's to log)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def track(
    items: Iterable[_Item],
    description: str,
    *,
    total: int | None = None,
    unit: str = "img",
    enabled: bool = True,
    every: float = LOG_EVERY_S,
) -> Iterator[_Item]:
    """Yield `items`, showing `Progress` (`total`: ``len(items)`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, description, unit=unit, enabled=enabled, every=every) as progress:
        for item in items:
            yield item
            progress.update()


__all__ = ["LOG_EVERY_S", "Progress", "format_duration", "track"]
