"""Service heartbeats: each ready instance keeps a short-lived key in Redis, so the CLI,
the embedded default and operators can see which services are up."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import redis

from kubesweep import keys

log = logging.getLogger(__name__)
TTL_MS = 15_000


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(client: redis.Redis, service: str, instance: str | None = None) -> None:
    value = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "ts": time.time()})
    client.set(keys.heartbeat(service, instance or instance_name()), value, px=TTL_MS)


def alive(client: redis.Redis, service: str) -> list[str]:
    """Instances of ``service`` that beat recently."""
    found = client.scan_iter(match=keys.heartbeat_pattern(service), count=100)
    return [str(key) for key in found]


def start_beating(client: redis.Redis, service: str, stop: threading.Event) -> threading.Thread:
    """Beat every third of the TTL on a daemon thread until ``stop`` is set."""

    def loop() -> None:
        while not stop.is_set():
            try:
                beat(client, service)
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)
            stop.wait(TTL_MS / 3000)

    thread = threading.Thread(target=loop, name=f"heartbeat-{service}", daemon=True)
    thread.start()
    return thread
