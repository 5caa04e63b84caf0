"""``python -m kubesweep_dispatcher api|worker|watch``: the dispatcher's entry points."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from kubesweep import heartbeat
from kubesweep import logging as kslogging
from kubesweep.messaging import DISPATCH_QUEUE
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.settings import DispatcherSettings

log = logging.getLogger(__name__)


def _serve_api(ctx: DispatcherContext) -> None:
    from waitress import serve

    from kubesweep_dispatcher.api import create_app
    from kubesweep_dispatcher.api.auth import is_loopback
    from kubesweep_dispatcher.platforms.registry import available_platforms
    from kubesweep_dispatcher.storage.registry import available_storages

    settings = ctx.settings
    if settings.api_token is None and not is_loopback(settings.api_host):
        raise SystemExit(
            f"refusing to listen on {settings.api_host} without KUBESWEEP_API_TOKEN: "
            "set a token or listen on 127.0.0.1"
        )
    # Import every platform (the kubernetes client takes seconds) before announcing
    # readiness, not inside the first submission.
    available_platforms()
    available_storages()
    heartbeat.start_beating(ctx.store.redis, "dispatcher-api", threading.Event())
    log.info("dispatcher API listening on %s:%d", settings.api_host, settings.api_port)
    serve(
        create_app(ctx),
        host=settings.api_host,
        port=settings.api_port,
        threads=settings.api_threads,
        ident="kubesweep-dispatcher",
        **settings.waitress_limits(),
    )


def _run_worker(ctx: DispatcherContext) -> None:
    from celery.signals import worker_ready, worker_shutting_down

    from kubesweep_dispatcher.platforms.registry import available_platforms
    from kubesweep_dispatcher.storage.registry import available_storages
    from kubesweep_dispatcher.tasks import create_worker_app

    app = create_worker_app(ctx)
    stop = threading.Event()

    def on_ready(**_: object) -> None:
        available_storages()
        for name in available_platforms():
            ctx.platform(name).warm_up()
        heartbeat.start_beating(ctx.store.redis, "dispatcher-worker", stop)

    asked = threading.Event()  # a SIGTERM/SIGINT, not a crash, ends the worker
    worker_ready.connect(on_ready, weak=False)
    worker_shutting_down.connect(lambda **_: asked.set(), weak=False)
    code: object = 1
    try:
        app.worker_main(
            [
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(ctx.settings.worker_concurrency),
                "--queues",
                DISPATCH_QUEUE,
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                "dispatcher@%h",
                "--loglevel",
                ctx.settings.log_level,
            ]
        )
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        # A Redis restart while a task is being acknowledged can end Celery with
        # "Unrecoverable error" (kombu: 'NoneType' object has no attribute 'hostname'); its
        # pool threads then kept the interpreter from exiting, so the process lived on with
        # a beating heartbeat and consumed nothing, and trials stayed WAITING for good
        # (found by tests/chaos). Stop the heartbeat and exit for real, so the supervisor
        # (Kubernetes, compose, the embedded stack) starts a new worker.
        stop.set()
        status = code if isinstance(code, int) else 1
        if not asked.is_set():
            status = status or 1
        log.warning("worker stopped (exit code %d)", status)
        logging.shutdown()
        os._exit(status)


def _run_watch(ctx: DispatcherContext) -> None:
    from kubesweep_dispatcher import watch

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    heartbeat.start_beating(ctx.store.redis, "dispatcher-watch", stop)
    log.info("watcher started")
    watch.run(ctx, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubesweep-dispatcher")
    parser.add_argument("role", nargs="?", default="api", choices=["api", "worker", "watch"])
    args = parser.parse_args(argv)
    settings = DispatcherSettings()
    kslogging.configure(
        f"dispatcher-{args.role}", level=settings.log_level, fmt=settings.log_format
    )
    ctx = DispatcherContext.from_settings(settings)
    {"api": _serve_api, "worker": _run_worker, "watch": _run_watch}[args.role](ctx)


if __name__ == "__main__":
    main()
