"""Slow clients (slowloris) against the waitress servers of the collector and the API:
hundreds of half-sent requests neither lock other clients out nor stay open forever, and a
half-sent body records nothing."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.store import Store

from .conftest import CHANNEL_TIMEOUT_S

pytestmark = pytest.mark.integration

# More than waitress' default connection limit (100), which this attack used to exhaust.
SLOW_CLIENTS = 250


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


@contextlib.contextmanager
def _slow_clients(url: str, count: int, opening: bytes) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(_address(url), timeout=5)
            sock.sendall(opening)
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        sock.recv(65536)  # EOF (or an error reply before it): the server let go
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("service", ["collector", "api"])
def test_half_sent_headers_lock_nobody_out_and_are_dropped(
    stack: EmbeddedStack, service: str
) -> None:
    url = stack.collector_url if service == "collector" else stack.api_url
    opening = b"POST /api/v1/trials/a/b/metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
    with _slow_clients(url, SLOW_CLIENTS, opening) as slow:
        for _ in range(3):
            assert requests.get(f"{url}/healthz", timeout=10).ok
        # Every slow client is cut off once it has been idle for the channel timeout.
        deadline = time.monotonic() + CHANNEL_TIMEOUT_S * 4 + 10
        still_open = [s for s in slow if not _closed_by_server(s, deadline)]
        assert still_open == []
    assert requests.get(f"{url}/healthz", timeout=10).ok


def test_a_trickling_client_does_not_starve_others(stack: EmbeddedStack) -> None:
    """One byte at a time, never idle long enough to be dropped: it only holds its own
    connection, not a worker thread."""
    sock = socket.create_connection(_address(stack.collector_url), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(4):
            sock.sendall(b"X")
            assert requests.get(f"{stack.collector_url}/healthz", timeout=10).ok
            time.sleep(CHANNEL_TIMEOUT_S / 4)
    finally:
        sock.close()


def test_a_half_sent_body_records_nothing(stack: EmbeddedStack, store: Store) -> None:
    exp_ids = store.list_experiment_ids()
    before = sum(len(store.read_events(e, count=100_000)) for e in exp_ids)
    opening = (
        b"POST /api/v1/trials/abcdefgh/abcdefgh/metrics HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        b'{"attempt": 1, "type": "FINAL", "sequence": 0, "value": 0.5'
    )
    with _slow_clients(stack.collector_url, 20, opening) as slow:
        deadline = time.monotonic() + CHANNEL_TIMEOUT_S * 4 + 10
        assert [s for s in slow if not _closed_by_server(s, deadline)] == []
    after = sum(len(store.read_events(e, count=100_000)) for e in exp_ids)
    assert after == before
