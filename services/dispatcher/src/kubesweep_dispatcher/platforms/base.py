"""The platform extension point."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kubesweep.config import ExperimentSpec
from kubesweep.messaging import TrialStatus
from kubesweep.records import TrialRecord
from kubesweep_dispatcher.storage import StorageBackend


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a platform needs to start one attempt of one trial."""

    spec: ExperimentSpec
    trial: TrialRecord
    storage: StorageBackend
    token: str
    collector_url: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobObservation:
    """A platform's view of a trial's job, for platforms whose jobs do not report their own
    status (kubeflow): the watcher turns it into trial transitions."""

    exists: bool
    status: TrialStatus | None  # None: still waiting to run
    message: str = ""
    pending_since: float | None = None
    # The job failed, or is stuck pending, because of the infrastructure (an eviction, an
    # image that cannot be pulled, no node to run on): worth a new attempt, not a trial failure.
    retryable: bool = False


class Platform(ABC):
    """Runs trials: ``local`` processes, later ``kubeflow`` jobs.

    ``launch`` must be idempotent for one trial attempt (a redelivered task may call
    it twice) and return a handle that ``cancel`` and ``is_alive`` understand.
    Every platform runs the shared contract suite in
    ``tests/contract/test_platform_contract.py``.
    """

    name: str

    def preflight(self, spec: ExperimentSpec) -> None:  # noqa: B027 - optional hook
        """Refuse an experiment (ConfigError) the platform cannot run, before any trial."""

    def observe(self, trial: TrialRecord) -> JobObservation | None:
        """The job's status as the platform sees it; None when the job reports for itself."""
        return None

    def pending_timeout(self, spec: ExperimentSpec) -> float | None:
        """How long a job may wait to start before its trial fails; None for no limit."""
        return None

    def max_attempts(self, spec: ExperimentSpec) -> int:
        """How many attempts a trial gets when the infrastructure ends them (``retryable``)."""
        return 1

    def follow(  # noqa: B027 - optional hook
        self,
        specs: Sequence[ExperimentSpec],
        notify: Callable[[str, str], None],
        *,
        resync_s: float = 300.0,
    ) -> None:
        """Follow the jobs of these live experiments (and stop following any others; an
        empty ``specs`` stops everything).

        Called by the watcher on every sweep. A platform that can watch its jobs (kubeflow:
        the Kubernetes watch API) calls ``notify(experiment_id, trial_id)`` from any thread
        when a trial's job changes, re-reads everything every ``resync_s`` and answers
        ``observe`` from what it follows; the default follows nothing and the watcher polls."""

    def cleanup_experiment(self, exp_id: str, spec: ExperimentSpec) -> None:  # noqa: B027
        """Delete what the experiment left on the platform (jobs, Secrets)."""

    def read_live_file(self, trial: TrialRecord, relpath: str) -> bytes | None:
        """A file of a trial that is still running, as its job sees it now.

        ``relpath`` is relative to the trial's folder on storage (``output/<role>-<index>/
        stdout``, ...). Return None to let the caller read the copy on storage: platforms
        whose jobs write straight to storage need not override this; kubeflow answers stdout
        from the pod's log, a local trial on remote storage from its local work folder.
        """
        return None

    def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Prepare anything slow (connections, helper processes) before the first launch."""

    @abstractmethod
    def launch(self, request: LaunchRequest) -> str:
        """Start the trial and return its job handle."""

    @abstractmethod
    def cancel(self, trial: TrialRecord) -> None:
        """Stop the trial's job if it still runs; no error if it is gone."""

    @abstractmethod
    def is_alive(self, trial: TrialRecord) -> bool | None:
        """Whether the job still exists; None when this process cannot tell."""
