"""Hypothesis-generated report posts against a real collector process (waitress, Redis):
never a 5xx, and the trial's event stream holds exactly the metrics the collector
acknowledged - each once, none lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubesweep.cli.embedded import free_port
from kubesweep.messaging import ExperimentStatus, TrialStatus
from kubesweep.records import ExperimentRecord
from kubesweep.store import Store
from kubesweep.tokens import trial_token

pytestmark = pytest.mark.integration

KEY = "fuzz-signing-key"
EXP, OWNER = "fuzzexp1", "fuzz-owner"
# What the collector acknowledged: (type, sequence) -> number of times it said "new".
ACKED: dict[tuple[str, int], int] = {}


@pytest.fixture(scope="module")
def collector(redis_server: str) -> Iterator[tuple[str, Store, str]]:
    store = Store.from_url(redis_server)
    store.redis.flushall()
    now = time.time()
    store.create_experiment(
        ExperimentRecord(id=EXP, spec={}, status=ExperimentStatus.RUNNING, created=now, updated=now)
    )
    assert store.acquire_lease(EXP, OWNER, 600_000)
    trial = store.create_trial(
        owner=OWNER, max_trials=0, exp_id=EXP, parameter_id=0, parameters={"x": 1}
    )
    assert trial is not None
    store.transition_trial(EXP, trial.id, TrialStatus.RUNNING, allowed_from=[TrialStatus.WAITING])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
    env.update(
        KUBESWEEP_REDIS_URL=redis_server,
        KUBESWEEP_SIGNING_KEY=KEY,
        KUBESWEEP_COLLECTOR_PORT=str(port),
        KUBESWEEP_LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "kubesweep_collector"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        assert process.poll() is None, "the collector exited"
        assert time.monotonic() < deadline, "the collector did not start"
        time.sleep(0.1)
    yield url, store, trial.id
    process.terminate()
    _, err = process.communicate(timeout=10)
    # Every 5xx would have been logged with a traceback.
    assert b"Traceback" not in err, err.decode()[-3000:]


numbers = st.integers(-(10**9), 10**9) | st.floats(allow_nan=True, allow_infinity=True)
anything = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
values = numbers | st.dictionaries(st.text(max_size=6), anything, max_size=3).map(
    lambda d: d if not d else {"default": next(iter(d.values())), **d}
)
entries = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["PERIODICAL", "FINAL"]) | st.text(max_size=5),
        "sequence": st.integers(-2, 40) | st.text(max_size=3),
        "value": values,
    },
    optional={"extra": anything},
)
valid_entries = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["PERIODICAL", "FINAL"]),
        "sequence": st.integers(0, 40),
        "value": st.floats(-1e9, 1e9) | st.fixed_dictionaries({"default": st.integers(-5, 5)}),
    }
)
# Mostly well-formed, so the de-duplication and the stream are exercised as well.
some_entries = valid_entries | valid_entries | entries
attempts = st.just(1) | st.just(1) | st.integers(-1, 3) | st.text(max_size=2)
single = st.builds(lambda e, a: {**e, "attempt": a}, some_entries, attempts)
batch = st.fixed_dictionaries({"attempt": attempts, "metrics": st.lists(some_entries, max_size=5)})
garbage = anything


def _is_valid_entry(entry: dict[str, Any]) -> bool:
    return (
        set(entry) == {"type", "sequence", "value"}
        and entry["type"] in ("PERIODICAL", "FINAL")
        and isinstance(entry["sequence"], int)
        and entry["sequence"] >= 0
    )


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(["single", "batch", "garbage"]), single, batch, garbage)
def test_posts_never_5xx_and_acks_match_the_stream(
    collector: tuple[str, Store, str], kind: str, one: Any, many: Any, junk: Any
) -> None:
    url, _store, trial_id = collector
    token = trial_token(KEY, EXP, trial_id, 1)
    body, path = {
        "single": (one, "metrics"),
        "batch": (many, "metrics/batch"),
        "garbage": (junk, "metrics"),
    }[kind]
    reply = requests.post(
        f"{url}/api/v1/trials/{EXP}/{trial_id}/{path}",
        data=json.dumps(body, allow_nan=True),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert reply.status_code < 500, (reply.status_code, reply.text, body)
    assert reply.status_code in (200, 201, 400, 401, 409), (reply.status_code, reply.text)
    if reply.status_code == 400:
        assert reply.json()["error"]["message"]
    if reply.status_code not in (200, 201):
        return
    posted = [body] if kind != "batch" else list(body["metrics"])
    assert all(_is_valid_entry({k: v for k, v in e.items() if k != "attempt"}) for e in posted)
    new = 0
    for entry in posted:
        key = (entry["type"], entry["sequence"])
        if key not in ACKED:
            ACKED[key] = 1
            new += 1
    if kind == "batch":
        assert reply.json()["accepted"] == new, (reply.json(), posted)
    else:
        assert (reply.status_code == 201) == (new == 1), (reply.status_code, posted)


def test_the_stream_holds_exactly_what_was_acknowledged(
    collector: tuple[str, Store, str],
) -> None:
    url, store, trial_id = collector
    # However few valid posts the fuzzer happened to draw, the accounting below is exercised:
    # ten more well-formed intermediates, at sequences the fuzzer never uses.
    top_up = [{"type": "PERIODICAL", "sequence": seq, "value": 0.5} for seq in range(41, 51)]
    reply = requests.post(
        f"{url}/api/v1/trials/{EXP}/{trial_id}/metrics/batch",
        headers={"Authorization": f"Bearer {trial_token(KEY, EXP, trial_id, 1)}"},
        json={"attempt": 1, "metrics": top_up},
        timeout=30,
    )
    assert reply.ok, reply.text
    assert reply.json()["accepted"] == len(top_up)
    ACKED.update({("PERIODICAL", entry["sequence"]): 1 for entry in top_up})
    seen: dict[tuple[str, int], int] = {}
    for entry in store.read_events(EXP, count=100_000):
        event = entry.event
        if event.type in ("metric.final", "metric.intermediate"):
            kind = "FINAL" if event.type == "metric.final" else "PERIODICAL"
            key = (kind, int(event.payload["sequence"]))
            seen[key] = seen.get(key, 0) + 1
    assert len(ACKED) >= 10, f"too few valid posts generated: {ACKED}"
    assert seen == ACKED
    assert store.get_trial(EXP, trial_id).intermediate_count == sum(
        1 for kind, _ in ACKED if kind == "PERIODICAL"
    )
