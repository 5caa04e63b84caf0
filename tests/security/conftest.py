"""A running embedded stack with small code limits, and helpers to prove that hostile
input changed nothing: no experiment, no event, no file outside its folder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store

# Small enough to build an over-limit archive in memory in a test.
MAX_CODE_MB = 1
MAX_CODE_FILES = 50
CHANNEL_TIMEOUT_S = 3


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    root = tmp_path_factory.mktemp("security")
    running = EmbeddedStack(
        root / "stack",
        worker_concurrency=2,
        extra_env={
            "KUBESWEEP_MAX_CODE_MB": str(MAX_CODE_MB),
            "KUBESWEEP_MAX_CODE_FILES": str(MAX_CODE_FILES),
            # Short, so the slow-client tests see idle connections closed within seconds.
            "KUBESWEEP_HTTP_CHANNEL_TIMEOUT_S": str(CHANNEL_TIMEOUT_S),
        },
    )
    with running:
        yield running


@pytest.fixture(scope="package")
def store(stack: EmbeddedStack) -> Store:
    return Store.from_url(stack.redis_url)


_ROOTS = ((), ("storage",), ("storage", "kubesweep"))


def snapshot(root: Path, skip: tuple[str, ...] = ("logs",)) -> dict[str, str]:
    """Every file and link under ``root`` with a digest of its content or target."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        # The services' own log files (``<stack>/logs``) change on their own schedule.
        if any(part in skip for part in rel.parts[:2]):
            continue
        if path.is_symlink():
            found[str(rel)] = "-> " + str(path.readlink())
        elif path.is_file():
            found[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and path.relative_to(root).parts[1:] not in _ROOTS:
            # The storage root itself may appear with the first submission.
            found[str(rel)] = "dir"
    return found
