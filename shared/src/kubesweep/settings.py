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
