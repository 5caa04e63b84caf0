"""Kubernetes names, labels and selectors for kubesweep's Kubeflow jobs and Secrets.

Every function here is deterministic and total: it returns a valid Kubernetes name or
label value for *any* experiment or trial id (long, uppercase, underscores, unicode), so a
redelivered launch task computes the same name and adopts the job it already created.

Names come in two disjoint forms:

* **readable** — ``ks-<exp>-<trial>`` (attempt 1) or ``ks-<exp>-<trial>-<attempt>``, used
  when every part is lowercase alphanumeric without ``-`` and the result fits. Parts are
  then separated unambiguously, so two different id tuples never give the same name (NNI's
  lower-cased ``nni-exp-<exp>-trial-<trial>`` does collide, nni-reference.md §1.3).
* **hashed** — ``ks-<slug>--<hash>``: a sanitised, truncated slug for humans plus 12 base32
  characters (60 bits) of a SHA-256 over the kind and the raw ids. The ``--`` never occurs
  in a readable name, so the two forms cannot meet; two hashed names collide only on a
  60-bit hash collision.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

__all__ = [
    "ATTEMPT_LABEL",
    "EXPERIMENT_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_JOB_NAME",
    "TRIAL_LABEL",
    "is_dns1035_label",
    "is_dns1123_subdomain",
    "is_label_value",
    "job_name",
    "label_value",
    "labels",
    "registry_secret_name",
    "selector",
    "storage_secret_name",
    "token_secret_name",
]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubesweep"
EXPERIMENT_LABEL = "kubesweep.io/experiment"
TRIAL_LABEL = "kubesweep.io/trial"
ATTEMPT_LABEL = "kubesweep.io/attempt"

# The operator names each replica's pod *and Service* `<job>-<replica type>-<index>`, and a
# Service name must itself be a DNS-1035 label of at most 63 characters. The longest type
# is "evaluator"; budgeting "-evaluator-9999" (15) leaves 48 for the job name.
MAX_JOB_NAME = 48
_PREFIX = "ks"
_HASH_CHARS = 12

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_READABLE_PART = re.compile(r"[a-z0-9]+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def is_dns1035_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1035 label (what the operator requires of job names)."""
    return len(name) <= 63 and _DNS1035.fullmatch(name) is not None


def is_dns1123_subdomain(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 subdomain (Secret, ServiceAccount names)."""
    return len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (may be empty)."""
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def _digest(kind: str, parts: tuple[str, ...]) -> str:
    # JSON of the tuple is an injective encoding: ("a-b", "c") and ("a", "b-c") differ.
    raw = json.dumps([kind, *parts], ensure_ascii=True).encode()
    return base64.b32encode(hashlib.sha256(raw).digest()).decode().lower()[:_HASH_CHARS]


def _slug(text: str) -> str:
    return _NOT_SLUG.sub("-", text.lower()).strip("-")


def _name(kind: str, parts: tuple[str, ...], limit: int) -> str:
    """``ks-<parts joined by ->`` when unambiguous and short enough, else the hashed form."""
    if all(_READABLE_PART.fullmatch(p) for p in parts):
        readable = "-".join((_PREFIX, *parts))
        if len(readable) <= limit:
            return readable
    digest = _digest(kind, parts)
    room = limit - len(_PREFIX) - 1 - 2 - len(digest)
    slug = _slug("-".join(parts))[:room].rstrip("-")
    # "ks-<slug>--<digest>" (or "ks--<digest>"): starts with a letter, ends alphanumeric.
    return f"{_PREFIX}-{slug}--{digest}" if slug else f"{_PREFIX}--{digest}"


def job_name(experiment_id: str, trial_id: str, attempt: int = 1) -> str:
    """The TFJob/PyTorchJob name of one trial attempt: DNS-1035, at most ``MAX_JOB_NAME``.

    Attempt 1 is ``ks-<exp>-<trial>`` (ARCHITECTURE §5); a retry gets its own job
    ``ks-<exp>-<trial>-<attempt>`` so it never waits for the old job's deletion.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    parts = (experiment_id, trial_id) if attempt == 1 else (experiment_id, trial_id, str(attempt))
    return _name("job", parts, MAX_JOB_NAME)


def token_secret_name(experiment_id: str, trial_id: str, attempt: int = 1) -> str:
    """The Secret holding one attempt's collector token: ``<job name>-token``.

    One immutable Secret per attempt (not one shared per experiment): no concurrent
    read-modify-write between workers, no growth towards the 1 MiB object limit, and it can
    be owned by (and garbage-collected with) its job.
    """
    return f"{job_name(experiment_id, trial_id, attempt)}-token"


def storage_secret_name(experiment_id: str) -> str:
    """The experiment's Azure File Secret (``azurestorageaccountname``/``...key``)."""
    return _name("storage", (experiment_id, "storage"), 63)


def registry_secret_name(experiment_id: str, role: str) -> str:
    """The ``kubernetes.io/dockerconfigjson`` Secret made from a role's
    ``privateRegistryAuthPath`` (NNI creates one per role too)."""
    return _name("registry", (experiment_id, "registry", role.lower()), 63)


def label_value(value: str) -> str:
    """``value`` itself when it is a valid label value, else ``<slug>--<hash>``.

    Identity on valid values keeps selectors readable (``kubesweep.io/trial=abc12``).
    Only an id spelled exactly like another id's hashed form could collide, and kubesweep's
    own ids (``kubesweep.ids``) are always valid values, so that never arises in practice.
    """
    if is_label_value(value) and value:
        return value
    digest = _digest("label", (value,))
    slug = _slug(value)[: 63 - 2 - len(digest)].rstrip("-")
    return f"{slug}--{digest}" if slug else digest


def labels(
    experiment_id: str, trial_id: str | None = None, attempt: int | None = None
) -> dict[str, str]:
    """The labels kubesweep puts on its jobs, pod templates and Secrets (ARCHITECTURE §5)."""
    out = {MANAGED_BY_LABEL: MANAGED_BY, EXPERIMENT_LABEL: label_value(experiment_id)}
    if trial_id is not None:
        out[TRIAL_LABEL] = label_value(trial_id)
    if attempt is not None:
        out[ATTEMPT_LABEL] = str(attempt)
    return out


def selector(
    experiment_id: str | None = None, trial_id: str | None = None, attempt: int | None = None
) -> str:
    """A ``labelSelector`` string: everything kubesweep manages, narrowed by what is given.

    A trial without its experiment is refused: trial ids are only unique per experiment.
    """
    if experiment_id is None:
        if trial_id is not None or attempt is not None:
            raise ValueError("a trial or attempt selector needs the experiment id")
        return f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    if attempt is not None and trial_id is None:
        raise ValueError("an attempt selector needs the trial id")
    found = labels(experiment_id, trial_id, attempt)
    return ",".join(f"{key}={value}" for key, value in found.items())
