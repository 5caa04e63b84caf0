"""How the kubeflow platform reads jobs and pods: conditions, pending reasons, infrastructure
failures, and the informer's reconnect policy on API errors.

The objects are what the API server returns (shapes from the 1.20 server and the training
operator); the informer test feeds it errors that a loopback API server cannot be made to
produce on demand (500, 429), through its list call.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubesweep.errors import ConfigError
from kubesweep_dispatcher.platforms.kubeflow import cluster
from kubesweep_dispatcher.platforms.kubeflow.informer import Informer
from kubesweep_dispatcher.platforms.kubeflow.overrides import parse_overrides


def _job(*conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "status": {
            "conditions": [
                {"type": kind, "status": status, "message": message}
                for kind, status, message in conditions
            ]
        },
    }


def test_job_state_is_the_last_true_condition() -> None:
    assert cluster.job_state(_job()).phase == "Created"
    running = cluster.job_state(_job(("Created", "True", ""), ("Running", "True", "")))
    assert running.phase == "Running"
    assert running.created == pytest.approx(1767323045.0)
    done = cluster.job_state(
        _job(("Created", "True", ""), ("Running", "False", ""), ("Failed", "True", "1 failed"))
    )
    assert (done.phase, done.message) == ("Failed", "1 failed")
    restarting = cluster.job_state(_job(("Created", "True", ""), ("Restarting", "True", "")))
    assert restarting.phase == "Running"


def _pod(status: dict[str, Any], name: str = "j-worker-0") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def test_pending_reasons_and_which_are_worth_another_attempt() -> None:
    unschedulable = _pod(
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                }
            ],
        }
    )
    reason = cluster.pending_reason([unschedulable])
    assert reason == (
        "pod j-worker-0: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    assert cluster.retryable_pending(reason)
    for waiting, retry in (
        ("ImagePullBackOff", True),
        ("ErrImagePull", True),
        ("InvalidImageName", False),
        ("CreateContainerConfigError", False),
    ):
        pod = _pod(
            {
                "phase": "Pending",
                "containerStatuses": [{"state": {"waiting": {"reason": waiting, "message": "m"}}}],
            }
        )
        reason = cluster.pending_reason([pod])
        assert reason == f"pod j-worker-0: {waiting}: m"
        assert cluster.retryable_pending(reason) is retry, waiting
    assert cluster.pending_reason([_pod({"phase": "Pending"})]) == ""
    assert not cluster.retryable_pending("")


def test_infrastructure_failures_are_told_from_the_trials_own() -> None:
    evicted = _pod(
        {"phase": "Failed", "reason": "Evicted", "message": "The node was low on memory."}
    )
    assert cluster.infrastructure_failure([evicted]) == (
        "pod j-worker-0: Evicted: The node was low on memory."
    )
    disrupted = _pod(
        {
            "phase": "Failed",
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": "preempted by a higher priority pod",
                }
            ],
        }
    )
    assert "PreemptionByScheduler" in cluster.infrastructure_failure([disrupted])
    crashed = _pod(
        {
            "phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
        }
    )
    assert cluster.infrastructure_failure([crashed]) == ""
    assert cluster.infrastructure_failure([crashed, evicted]).startswith("pod j-worker-0: Evicted")


def test_max_attempts_override_is_validated_by_field() -> None:
    assert parse_overrides({"job": {"maxAttempts": 4}}).job.max_attempts == 4
    assert parse_overrides({}).job.max_attempts is None
    with pytest.raises(ConfigError) as refused:
        parse_overrides({"job": {"maxAttempts": 0}})
    assert refused.value.field == "kubesweep.job.maxAttempts"


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.status = 200
        self.data = json.dumps(body).encode()


def test_informer_backs_off_on_500_and_429_then_lists() -> None:
    """Two failed lists (500, 429), then a good one: the informer waits between them with a
    doubling backoff and delivers the list; a watch error would be handled the same way."""
    calls: list[float] = []
    listed = threading.Event()
    stop_watching = threading.Event()

    def list_call(**kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if kwargs.get("watch"):
            stop_watching.wait(5)
            raise ApiException(status=0, reason="stopped")
        if len(calls) == 1:
            raise ApiException(status=500, reason="Internal Server Error")
        if len(calls) == 2:
            raise ApiException(status=429, reason="Too Many Requests")
        listed.set()
        return _Response(
            {"metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "a"}}]}
        )

    seen: list[str] = []
    informer = Informer(
        "fake",
        list_call,
        selector="x",
        notify=lambda o: seen.append(o["metadata"]["name"]),
        backoff_s=0.05,
    )
    informer.start()
    try:
        assert listed.wait(5)
        assert informer.synced.wait(5)
        assert seen == ["a"]
        assert informer.errors == 2
        assert calls[1] - calls[0] >= 0.05
        assert calls[2] - calls[1] >= 0.1  # doubled
    finally:
        stop_watching.set()
        informer.stop()
