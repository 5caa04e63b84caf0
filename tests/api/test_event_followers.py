"""Followed event streams are capped so that open browser tabs cannot take every API thread;
beyond the cap the API answers 503 with Retry-After, and replays (follow=false) still work."""

from __future__ import annotations

import time

from flask import Flask
from pydantic import SecretStr

from kubesweep.messaging import ExperimentStatus
from kubesweep.records import ExperimentRecord
from kubesweep.store import Store
from kubesweep_dispatcher.api import create_app
from kubesweep_dispatcher.context import DispatcherContext
from kubesweep_dispatcher.settings import DispatcherSettings

TOKEN = "followers-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _app(redis_url: str, threads: int) -> Flask:
    settings = DispatcherSettings(
        redis_url=redis_url,
        signing_key=SecretStr("k" * 32),
        api_token=SecretStr(TOKEN),
        api_threads=threads,
    )
    return create_app(DispatcherContext.from_settings(settings))


def test_followed_streams_are_capped_and_slots_come_back(redis_url: str, store: Store) -> None:
    now = time.time()
    store.create_experiment(
        ExperimentRecord(
            id="exp1", spec={}, status=ExperimentStatus.RUNNING, created=now, updated=now
        )
    )
    client = _app(redis_url, threads=4).test_client()  # 2 follower slots
    path = "/api/v1/experiments/exp1/events"
    held = [client.get(path, headers=AUTH, buffered=False) for _ in range(2)]
    assert [r.status_code for r in held] == [200, 200]

    refused = client.get(path, headers=AUTH, buffered=False)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert refused.get_json()["error"]["code"] == "unavailable"
    replay = client.get(f"{path}?follow=false", headers=AUTH)
    assert replay.status_code == 200
    assert "event: experiment.submitted" in replay.get_data(as_text=True)

    # A stream closed before it sent anything gives its slot back.
    held.pop().close()
    again = client.get(path, headers=AUTH, buffered=False)
    assert again.status_code == 200
    again.close()
    for response in held:
        response.close()
    reopened = [client.get(path, headers=AUTH, buffered=False) for _ in range(2)]
    assert [r.status_code for r in reopened] == [200, 200]
    for response in reversed(reopened):  # the test client pops request contexts LIFO
        response.close()
