"""spol.progress: log lines off a terminal, tqdm's bar on one, nothing when silenced."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from spol.progress import Progress, format_duration, track

SRC = Path(__file__).resolve().parents[1] / "src"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "spol.progress"]


def test_off_a_terminal_progress_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spol.progress")
    assert not sys.stderr.isatty()  # pytest captures stderr: the case of a pipe
    assert list(track(["a", "b", "c", "d"], "checking images", every=0)) == ["a", "b", "c", "d"]
    lines = _lines(caplog)
    assert [line.split(",")[0] for line in lines] == [
        "checking images: 1/4 (25%)",
        "checking images: 2/4 (50%)",
        "checking images: 3/4 (75%)",
        "checking images: 4/4 (100%)",
    ]
    assert "img/s" in lines[0] and "left" in lines[0]


def test_lines_come_every_so_often_not_every_item(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spol.progress")
    with Progress(1000, "report samples", every=3600) as progress:
        for _ in range(1000):
            progress.update()
    assert _lines(caplog) == []
    assert progress.done == 1000


def test_unknown_total_counts_without_a_percentage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spol.progress")
    list(track(iter(range(2)), "reading", unit="file", every=0))
    assert [line.split(",")[0] for line in _lines(caplog)] == ["reading: 1 file", "reading: 2 file"]


def test_silenced_or_disabled_progress_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spol.progress")
    list(track(range(3), "off", enabled=False, every=0))
    quiet = logging.getLogger("spol.progress")
    quiet.setLevel(logging.WARNING)  # what `spol -q` does
    try:
        list(track(range(3), "quiet", every=0))
    finally:
        quiet.setLevel(logging.NOTSET)
    assert _lines(caplog) == []


def test_on_a_terminal_a_bar_is_drawn_and_no_line_logged() -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal 80 columns wide
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from spol.progress import Progress\n"
        "with Progress(5, 'drawing', every=0, leave=True) as progress:\n"
        "    for _ in range(5):\n"
        "        progress.update()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.run([sys.executable, "-c", code], stderr=follower, env=env, timeout=60)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal is closed once everything was read
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "drawing: 100%" in text and "5/5" in text
    assert "INFO" not in text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (7.4, "7s"), (59.6, "1m00s"), (125, "2m05s"), (3720, "1h02m"), (-3, "0s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
