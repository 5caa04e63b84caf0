"""Turning accepted status reports into store updates and stream events (metrics: ``writer``)."""

from __future__ import annotations

from kubesweep.messaging import TrialStatus
from kubesweep.store import Store
from kubesweep_collector.reports import StatusReport

_ALLOWED_FROM = {
    TrialStatus.RUNNING: (TrialStatus.WAITING,),
    TrialStatus.SUCCEEDED: (TrialStatus.WAITING, TrialStatus.RUNNING),
    TrialStatus.FAILED: (TrialStatus.WAITING, TrialStatus.RUNNING),
}


def publish_status(store: Store, exp_id: str, trial_id: str, report: StatusReport) -> bool:
    """Apply the status if the trial is still in a state it can move from; False otherwise
    (e.g. a cancelled trial whose keeper reports its exit afterwards)."""
    status = TrialStatus(report.status)
    return store.transition_trial(
        exp_id,
        trial_id,
        status,
        allowed_from=_ALLOWED_FROM[status],
        fields={"exit_code": report.exit_code, "message": report.message or None},
        payload={"exit_code": report.exit_code, "message": report.message},
    )
