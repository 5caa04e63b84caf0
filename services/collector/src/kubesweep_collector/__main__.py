"""``python -m kubesweep_collector``: serve metric reports."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from waitress import serve

from kubesweep import heartbeat
from kubesweep import logging as kslogging
from kubesweep_collector.app import create_app
from kubesweep_collector.settings import CollectorSettings


def main() -> None:
    settings = CollectorSettings()
    kslogging.configure("collector", level=settings.log_level, fmt=settings.log_format)
    app = create_app(settings)
    heartbeat.start_beating(app.extensions["kubesweep.store"].redis, "collector", threading.Event())
    logging.getLogger(__name__).info(
        "collector listening on %s:%d", settings.collector_host, settings.collector_port
    )
    where: dict[str, Any] = {"host": settings.collector_host, "port": settings.collector_port}
    if settings.collector_reuse_port:
        where = {"sockets": [_shared_socket(settings.collector_host, settings.collector_port)]}
    serve(
        app,
        threads=settings.collector_threads,
        ident="kubesweep-collector",
        **where,
        **settings.waitress_limits(),
    )


def _shared_socket(host: str, port: int) -> socket.socket:
    """A socket other collectors on this host may bind too (SO_REUSEPORT): the kernel
    spreads new connections between them, as a Service would between pods."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


if __name__ == "__main__":
    main()
