"""Run every benchmark and print one markdown report.

    uv run python -m bench all            # full run (minutes)
    uv run python -m bench all --quick    # CI-sized smoke run (< 5 minutes)
    uv run python -m bench all --nni      # also time NNI 3.0 (installed into bench/.nni-venv)
    uv run python -m bench local_throughput   # one benchmark; each file also runs alone

Each benchmark runs in its own process, so one's imports and threads do not skew another.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (title, full arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "local_throughput": (
        "Local throughput: 50 x 1 s trials at concurrency 4",
        [],
        ["--trials", "12", "--sleep", "0.5"],
    ),
    "local_throughput_zero": (
        "Local throughput: 200 x 0 s trials at concurrency 8",
        ["--trials", "200", "--concurrency", "8", "--sleep", "0"],
        ["--trials", "24", "--concurrency", "8", "--sleep", "0"],
    ),
    "tpe_latency": (
        "TPE suggestion latency vs history size",
        [],
        ["--n", "10", "100", "500", "--rounds", "2", "--calls", "3"],
    ),
    "tuners": ("Tuner regret on standard functions", [], ["--quick"]),
    "assessors": ("Early stopping: trial steps saved", [], ["--trials", "20"]),
    "collector": ("Collector: full path vs empty endpoint vs raw XADD", [], ["--seconds", "2"]),
    "staging": ("Code staging per storage backend", [], ["--repeats", "1", "--trials", "5"]),
    "kubeflow_dispatch": ("Kubeflow dispatch and watcher lag (real API server)", [], ["--quick"]),
}


def _script(name: str) -> Path:
    return HERE / f"{name.removesuffix('_zero')}.py"


def run(name: str, quick: bool, nni: bool) -> str:
    title, full, fast = BENCHMARKS[name]
    args = list(fast if quick else full)
    if nni and name == "tpe_latency":
        args.append("--nni")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(_script(name)), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    body = (
        done.stdout.strip()
        if done.returncode == 0
        else (f"FAILED (exit {done.returncode}):\n```\n{done.stderr.strip()[-2000:]}\n```")
    )
    return f"## {title}\n\n_{elapsed:.0f} s, `{' '.join([name, *args])}`_\n\n{body}\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("which", nargs="+", help="'all' or names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke run")
    parser.add_argument("--nni", action="store_true", help="also measure NNI 3.0")
    args = parser.parse_args()
    names = list(BENCHMARKS) if args.which == ["all"] else args.which
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    print(f"# kubesweep benchmarks ({'quick' if args.quick else 'full'})\n")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python "
        f"{platform.python_version()}; {platform.machine()}; "
        f"{len(__import__('os').sched_getaffinity(0))} cores\n"
    )
    failed = 0
    for name in names:
        section = run(name, args.quick, args.nni)
        failed += "FAILED (exit" in section
        print(section, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
