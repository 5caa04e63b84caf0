"""Collector settings (environment variables prefixed ``KUBESWEEP_``)."""

from __future__ import annotations

from pydantic import Field

from kubesweep.settings import SigningSettings


class CollectorSettings(SigningSettings):
    """What the collector needs: Redis, the signing key, where to listen and its limits."""

    collector_host: str = Field(default="127.0.0.1", description="address to listen on")
    collector_port: int = Field(default=8081, description="port (NNI's UI port + 1)")
    collector_threads: int = Field(default=8, ge=1, description="request threads")
    collector_max_body_bytes: int = Field(default=64 * 1024, description="largest report accepted")
    collector_reuse_port: bool = Field(
        default=False,
        description="bind with SO_REUSEPORT, so several collectors on one host share the port "
        "and the kernel spreads connections between them",
    )
    collector_max_inflight: int | None = Field(
        default=None,
        ge=1,
        description="reports written to Redis at once before the next ones are answered 429 "
        "(default: request threads - 2, so two threads stay free to answer)",
    )
    collector_saturation_seconds: float = Field(
        default=1.0,
        gt=0,
        description="how long a report may wait for a write slot before it is answered 429; "
        "once a write has been stuck this long, reports are answered 429 at once",
    )
    collector_retry_after_seconds: int = Field(
        default=1, ge=1, description="Retry-After of a 429 or 503 answer"
    )
    collector_redis_timeout: float = Field(
        default=5.0, gt=0, description="seconds to wait for Redis before answering 503"
    )
    collector_max_batch: int = Field(
        default=500, ge=1, description="most metrics in one batch report"
    )

    @property
    def inflight_limit(self) -> int:
        if self.collector_max_inflight is not None:
            return self.collector_max_inflight
        return max(1, self.collector_threads - 2)
