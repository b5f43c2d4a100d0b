"""Configuration from the environment (``MLOOP_*``) with unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the workspace lives and which databases back it.

    ``MLOOP_HOME`` — the workspace folder (default ``./.mloop``).
    ``MLOOP_DATABASE_URL`` — mloop's own metadata (default ``sqlite:///<home>/mloop.db``).
    ``MLOOP_TRACKING_URI`` — MLflow tracking and registry (default ``sqlite:///<home>/mlflow.db``).
    ``MLOOP_LOG_TRANSPORT`` — where servers send the prediction log: ``local`` segments (default),
    ``redis://host:port/db`` or ``nats://host:port`` (then ``mloop log collect`` writes the segments).
    ``MLOOP_AUTH`` — ``false`` serves without authentication (``mloop serve --no-auth``; loopback only).
    ``MLOOP_JWT_PUBLIC_KEY`` — a PEM file: tokens are then RS256 under it (else HS256 under the workspace secret);
    ``MLOOP_JWT_ISSUER`` / ``MLOOP_JWT_AUDIENCE`` (default ``mloop``), ``MLOOP_JWT_LEEWAY`` (seconds, at most 60).
    ``MLOOP_WEBHOOK_ALLOW`` — hosts that alarm webhooks may call besides loopback.
    ``MLOOP_MONITOR_INTERVAL`` — seconds between monitor ticks in a server (0 turns the scheduler off).
    """

    model_config = SettingsConfigDict(env_prefix="MLOOP_", extra="forbid")

    home: Path = Path(".mloop")
    database_url: str | None = None
    tracking_uri: str | None = None
    webhook_allow: str = ""
    auth: bool = True
    jwt_public_key: Path | None = None
    jwt_issuer: str = "mloop"
    jwt_audience: str = "mloop"
    jwt_leeway: float = 30.0
    log_transport: str = "local"
    monitor_interval: float = 10.0

    @property
    def webhook_hosts(self) -> list[str]:
        """``MLOOP_WEBHOOK_ALLOW``: comma-separated host names or IPs that monitor webhooks may call
        besides loopback."""
        return [h.strip() for h in self.webhook_allow.split(",") if h.strip()]
