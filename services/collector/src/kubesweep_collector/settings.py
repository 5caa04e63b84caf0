"""Collector settings (environment variables prefixed ``KUBESWEEP_``)."""

from __future__ import annotations

from pydantic import Field

from kubesweep.settings import SigningSettings


class CollectorSettings(SigningSettings):
    """What the collector needs: Redis, the signing key and where to listen."""

    collector_host: str = Field(default="127.0.0.1", description="address to listen on")
    collector_port: int = Field(default=8081, description="port (NNI's UI port + 1)")
    collector_threads: int = Field(default=8, description="request threads")
    collector_max_body_bytes: int = Field(default=64 * 1024, description="largest report accepted")
