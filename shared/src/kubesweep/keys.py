"""Every Redis key kubesweep uses. Nobody else spells a key."""

from __future__ import annotations

PREFIX = "ks"
EXPERIMENTS = f"{PREFIX}:experiments"
# A stream with one entry per new or resumed experiment, so tuners wake at once.
SUBMISSIONS = f"{PREFIX}:submissions"


def experiment(exp_id: str) -> str:
    return f"{PREFIX}:exp:{exp_id}"


def trials(exp_id: str) -> str:
    """Sorted set of the experiment's trial ids, scored by sequence number."""
    return f"{PREFIX}:exp:{exp_id}:trials"


def trial(exp_id: str, trial_id: str) -> str:
    return f"{PREFIX}:exp:{exp_id}:trial:{trial_id}"


def events(exp_id: str) -> str:
    return f"{PREFIX}:exp:{exp_id}:events"


def seq(exp_id: str) -> str:
    return f"{PREFIX}:exp:{exp_id}:seq"


def tuner_lease(exp_id: str) -> str:
    return f"{PREFIX}:lease:tuner:{exp_id}"


def dedup(exp_id: str) -> str:
    return f"{PREFIX}:dedup:{exp_id}"


def launch_claim(exp_id: str, trial_id: str, attempt: int) -> str:
    """Held briefly by the worker that is launching one attempt of a trial."""
    return f"{PREFIX}:exp:{exp_id}:launch:{trial_id}:{attempt}"


def heartbeat(service: str, instance: str) -> str:
    """Present while a service instance is alive and ready (expires by itself)."""
    return f"{PREFIX}:heartbeat:{service}:{instance}"


def heartbeat_pattern(service: str) -> str:
    return f"{PREFIX}:heartbeat:{service}:*"
