"""``python -m kubesweep_collector``: serve metric reports."""

from __future__ import annotations

import logging
import threading

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
    serve(
        app,
        host=settings.collector_host,
        port=settings.collector_port,
        threads=settings.collector_threads,
        ident="kubesweep-collector",
        **settings.waitress_limits(),
    )


if __name__ == "__main__":
    main()
