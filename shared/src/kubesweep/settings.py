"""Settings every service shares. Each service extends `CommonSettings` with its own
fields; settings are read once by an entry point and passed down, never at import."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Environment variables prefixed ``KUBESWEEP_`` (e.g. ``KUBESWEEP_REDIS_URL``)."""

    model_config = SettingsConfigDict(env_prefix="KUBESWEEP_", extra="ignore")

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis: store, event streams, Celery broker"
    )
    log_format: str = Field(default="text", description="text or json")
    log_level: str = Field(default="INFO")


class SigningSettings(CommonSettings):
    """Settings of the services that mint or check per-trial tokens."""

    signing_key: SecretStr = Field(
        description="HMAC key for per-trial tokens; shared by dispatcher and collector"
    )
    # The HTTP services (API, collector) are the ones that check tokens. waitress keeps a
    # connection slot for every client that has not finished its request, so slow clients
    # (slowloris) holding its default 100 slots locked everyone else out for two minutes.
    http_connection_limit: int = Field(
        default=1000, ge=1, description="HTTP services: open connections before refusing more"
    )
    http_channel_timeout_s: int = Field(
        default=30, ge=1, description="HTTP services: close a connection idle this long"
    )

    def waitress_limits(self) -> dict[str, int]:
        """waitress options that bound what slow or idle clients can hold."""
        timeout = self.http_channel_timeout_s
        return {
            "connection_limit": self.http_connection_limit,
            "channel_timeout": timeout,
            # Idle connections are only closed on this sweep (waitress' default is 30 s).
            "cleanup_interval": max(1, min(30, timeout // 2)),
        }
