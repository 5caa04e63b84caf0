"""The benchmark harness runs end to end (``python -m bench all --smoke``): every benchmark
starts, runs on tiny sizes and prints its table. Figures are not asserted (speed targets
are ratios printed by bench/, never timed assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_all_smoke() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    from bench.__main__ import BENCHMARKS

    for title, _full, _quick in BENCHMARKS.values():
        assert f"## {title}" in done.stdout
    assert "FAILED" not in done.stdout
    assert "full path / empty endpoint" in done.stdout
    assert "memory bounded" in done.stdout
    assert "scale-out: two replicas" in done.stdout
