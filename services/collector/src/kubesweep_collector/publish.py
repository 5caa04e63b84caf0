"""Turning accepted reports into store updates and stream events."""

from __future__ import annotations

from kubesweep.messaging import TrialStatus
from kubesweep.store import Store
from kubesweep_collector.reports import MetricReport, StatusReport

_ALLOWED_FROM = {
    TrialStatus.RUNNING: (TrialStatus.WAITING,),
    TrialStatus.SUCCEEDED: (TrialStatus.WAITING, TrialStatus.RUNNING),
    TrialStatus.FAILED: (TrialStatus.WAITING, TrialStatus.RUNNING),
}


def publish_metric(store: Store, exp_id: str, trial_id: str, report: MetricReport) -> bool:
    """Record the metric once; False when it was a duplicate."""
    return store.record_metric(
        exp_id,
        trial_id,
        attempt=report.attempt,
        metric_type=report.type,
        sequence=report.sequence,
        value=report.value,
    )


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
