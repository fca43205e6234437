"""The program's own options: -v / -q anywhere on the command line, and what each lets through to the console."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SYNTH = ["--classes", "2", "--train", "2", "--test", "1", "--size", "64", "--workers", "1"]


def _spol(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `spol` console script as a user runs it, its stderr a pipe."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = "import sys; from spol.cli import main; sys.argv[0] = 'spol'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False
    )


def test_without_flags_spol_logs_info_and_no_debug(tmp_path: Path) -> None:
    # --debug (tracebacks of unexpected errors) may stand anywhere too and changes no log level.
    plain = _spol("data", "synth", str(tmp_path / "plain"), *SYNTH, "--debug", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "INFO spol.data.synthetic: drawing 6 synthetic images" in plain.stderr
    assert "DEBUG" not in plain.stderr


@pytest.mark.parametrize("where", ["before", "after the command", "among its options"])
def test_verbosity_flags_work_anywhere(tmp_path: Path, where: str) -> None:
    def line(flag: str, out: Path) -> list[str]:
        command = ["data", "synth", str(out), *SYNTH]
        return {
            "before": [flag, *command],
            "after the command": [*command, flag],
            "among its options": [*command[:5], flag, *command[5:]],
        }[where]

    quiet = _spol(*line("-q", tmp_path / "quiet"), cwd=tmp_path)
    verbose = _spol(*line("-v", tmp_path / "verbose"), cwd=tmp_path)
    for result, out in ((quiet, "quiet"), (verbose, "verbose")):
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"wrote 6 images to {tmp_path / out}\n"
    assert quiet.stderr == ""  # no log line, no progress
    assert "INFO spol.data.synthetic: drawing 6 synthetic images" in verbose.stderr
    assert "DEBUG spol.data.synthetic: synthetic config: SyntheticConfig(" in verbose.stderr
    assert "DEBUG PIL" not in verbose.stderr  # spol's debug messages, not Pillow's (one per PNG chunk)


def test_flags_after_double_dash_are_left_alone(tmp_path: Path) -> None:
    # After "--" every word is an argument: "-v" is then the output folder, not the flag.
    result = _spol("data", "synth", *SYNTH, "--", "-v", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "-v" / "synthetic_config.json").is_file()
