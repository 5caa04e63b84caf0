"""Run every benchmark and print one markdown report.

    uv run python -m bench all            # full run (minutes)
    uv run python -m bench all --quick    # CI-sized smoke run (< 5 minutes)
    uv run python -m bench all --nni      # also time NNI 3.0 (installed into bench/.nni-venv)
    uv run python -m bench all --smoke    # tiny sizes: what tests/bench runs
    uv run python -m bench local_throughput   # one benchmark; each file also runs alone

Each benchmark runs in its own process, so one's imports and threads do not skew another.
"""

from __future__ import annotations

import argparse
import os
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
    "collector": (
        "Collector: full path vs empty endpoint vs raw XADD",
        [],
        ["--seconds", "1.5", "--repeats", "3"],
    ),
    "collector_load": (
        "Collector load: long burst from several processes, memory over the run",
        [],
        ["--seconds", "8", "--processes", "2", "--threads", "4", "--trials", "16"],
    ),
    "scale": (
        "Scale: 100 experiments x 20 concurrent trials, one vs two replicas",
        [],
        ["--experiments", "6", "--concurrency", "4", "--trials", "4"],
    ),
    "staging": ("Code staging per storage backend", [], ["--repeats", "1", "--trials", "5"]),
    "kubeflow_dispatch": ("Kubeflow dispatch and watcher lag (real API server)", [], ["--quick"]),
}


# Smaller still, for the test that runs the harness (tests/bench): it checks that every
# benchmark runs end to end, not the figures. Unlisted: the quick arguments.
SMOKE: dict[str, list[str]] = {
    "local_throughput": ["--trials", "4", "--sleep", "0.2"],
    "local_throughput_zero": ["--trials", "6", "--concurrency", "3", "--sleep", "0"],
    "tpe_latency": ["--n", "10", "100", "--rounds", "1", "--calls", "2"],
    "assessors": ["--trials", "8"],
    "tuners": ["--seeds", "1", "--trials", "20"],
    "collector": ["--seconds", "0.5", "--repeats", "1"],
    "collector_load": [
        "--seconds",
        "4",
        "--processes",
        "2",
        "--threads",
        "4",
        "--trials",
        "8",
        "--pause",
        "1.5",
    ],
    "scale": ["--experiments", "2", "--concurrency", "2", "--trials", "2"],
    "staging": ["--repeats", "1", "--trials", "2"],
}


def _script(name: str) -> Path:
    return HERE / f"{name.removesuffix('_zero')}.py"


def run(name: str, quick: bool, nni: bool, smoke: bool = False) -> str:
    title, full, fast = BENCHMARKS[name]
    args = list(fast if quick else full)
    if smoke:
        args = list(SMOKE.get(name, fast))
    if nni and name in ("tpe_latency", "local_throughput"):
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


def _machine() -> str:
    """Date, machine and the versions that shape the figures."""
    import importlib.metadata as md

    import psutil

    from kubesweep.cli.embedded import redis_server_binary

    redis_version = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2:3]
    versions = ", ".join(
        f"{name} {md.version(name)}"
        for name in ("flask", "waitress", "redis", "celery", "pydantic")
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.node()}; "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; {platform.platform(terse=True)}; "
        f"Python {platform.python_version()}; Redis server {''.join(redis_version)}; "
        f"{versions}; load average at start {load}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("which", nargs="+", help="'all' or names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke run")
    parser.add_argument("--nni", action="store_true", help="also measure NNI 3.0")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the harness test)")
    args = parser.parse_args()
    args.quick = args.quick or args.smoke
    names = list(BENCHMARKS) if args.which == ["all"] else args.which
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    print(f"# kubesweep benchmarks ({size})\n")
    print(_machine() + "\n")
    failed = 0
    for name in names:
        section = run(name, args.quick, args.nni, args.smoke)
        failed += "FAILED (exit" in section
        print(section, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
