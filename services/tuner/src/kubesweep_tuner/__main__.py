"""``python -m kubesweep_tuner``: run the tuner service."""

from __future__ import annotations

import signal
import threading

from kubesweep import heartbeat
from kubesweep import logging as kslogging
from kubesweep.celeryapp import make_celery, warm_up
from kubesweep.store import Store
from kubesweep_tuner.algorithms.registry import available
from kubesweep_tuner.service import TunerService
from kubesweep_tuner.settings import TunerSettings


def main() -> None:
    settings = TunerSettings()
    kslogging.configure("tuner", level=settings.log_level, fmt=settings.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Load every algorithm (hyperopt takes seconds to import) before announcing readiness.
    available()
    store = Store.from_url(settings.redis_url)
    celery = make_celery(settings.redis_url)
    warm_up(celery)
    heartbeat.start_beating(store.redis, "tuner", stop)
    TunerService(settings, store, celery).run(stop)


if __name__ == "__main__":
    main()
