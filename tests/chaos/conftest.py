"""Chaos suite fixtures: a seeded random source and the session's figures.

The seed is printed at the start and in the summary; set ``KUBESWEEP_CHAOS_SEED`` to replay
a run's fault schedule. ``KUBESWEEP_CHAOS_ROUNDS`` (default 3, one experiment each) sets
the length; every round injects ``KUBESWEEP_CHAOS_FAULTS`` faults (default 10)."""

from __future__ import annotations

import os
import random

import pytest

# The kube-apiserver tier's fixtures, for test_kubeflow_chaos (they skip without the tier).
from tests.fakes.fixtures import nfs_server  # noqa: F401
from tests.k8s.conftest import (  # noqa: F401
    fake_operator,
    k8s_api,
    k8s_cluster,
    k8s_namespace,
    kubelet_factory,
)
from tests.k8s.test_kubeflow_platform import nfs_kubelet  # noqa: F401

from .harness import Figures

FIGURES = Figures()
SEED = int(os.environ.get("KUBESWEEP_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
ROUNDS = int(os.environ.get("KUBESWEEP_CHAOS_ROUNDS", "3"))
FAULTS_PER_ROUND = int(os.environ.get("KUBESWEEP_CHAOS_FAULTS", "10"))


def pytest_configure(config: pytest.Config) -> None:
    # test_kubeflow_chaos reuses tests/k8s' helpers, whose module declares this marker.
    config.addinivalue_line(
        "markers",
        "k8s: needs the local kube-apiserver tier (scripts/k8s-test-env.sh); skipped without it",
    )


@pytest.fixture(scope="session")
def figures() -> Figures:
    return FIGURES


@pytest.fixture(scope="session")
def chaos_seed() -> int:
    return SEED


def pytest_report_header() -> str:
    return f"chaos seed {SEED} (KUBESWEEP_CHAOS_SEED={SEED} replays it), rounds {ROUNDS}"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES.faults or FIGURES.experiments:
        by_target = ", ".join(f"{k} {v}" for k, v in sorted(FIGURES.by_target.items()))
        terminalreporter.write_sep("-", "chaos")
        terminalreporter.write_line(f"chaos seed {SEED}; faults by target: {by_target}")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # After pytest's own "N passed" line, so the figures are the output's last line.
    if not (FIGURES.faults or FIGURES.experiments):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(FIGURES.line())
    else:
        print(FIGURES.line())
