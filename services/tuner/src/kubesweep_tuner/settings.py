"""Tuner settings (environment variables prefixed ``KUBESWEEP_``)."""

from __future__ import annotations

from pydantic import Field

from kubesweep.settings import CommonSettings


class TunerSettings(CommonSettings):
    """How the tuner shares experiments with its replicas and paces its loop."""

    tuner_lease_ms: int = Field(default=10_000, description="experiment lease lifetime")
    tuner_scan_interval_s: float = Field(
        default=2.0,
        description="how often to re-check all experiments (new ones wake the tuner at once)",
    )
    tuner_relaunch_after_s: float = Field(
        default=10.0, description="re-send a launch whose trial has not started by then"
    )
    tuner_allow_custom_algorithms: bool = Field(
        default=False, description="allow codeDir/className tuners (runs user code in the tuner)"
    )
