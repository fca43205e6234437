"""The prepared GPU check runs on the CPU in its tiny mode: every check passes (GPU-only ones: skipped)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_in_tiny_cpu_mode_passes_and_writes_its_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    statuses = {entry["check"]: entry["status"] for entry in report["checks"]}
    assert statuses.pop("pipeline/ddp2") == "SKIP"
    assert statuses.pop("pipeline/deterministic") == statuses.pop("pipeline/bf16") == "SKIP"
    assert set(statuses.values()) == {"PASS"}
    assert len([name for name in statuses if name.startswith("unit/")]) == 12
    lines = [line for line in result.stdout.splitlines() if line.split(" ", 1)[0] in {"PASS", "FAIL", "SKIP"}]
    assert len(lines) == len(report["checks"])
    speeds = {entry["check"]: entry for entry in report["checks"] if entry["check"].startswith("speed/")}
    assert speeds["speed/train/memory"]["bf16_nhwc_img_per_s"] > 0
