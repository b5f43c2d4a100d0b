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
    ``MLOOP_WEBHOOK_ALLOW`` — hosts that alarm webhooks may call besides loopback.
    ``MLOOP_MONITOR_INTERVAL`` — seconds between monitor ticks in a server (0 turns the scheduler off).
    """

    model_config = SettingsConfigDict(env_prefix="MLOOP_", extra="forbid")

    home: Path = Path(".mloop")
    database_url: str | None = None
    tracking_uri: str | None = None
    webhook_allow: str = ""
    log_transport: str = "local"
    monitor_interval: float = 10.0

    @property
    def webhook_hosts(self) -> list[str]:
        """``MLOOP_WEBHOOK_ALLOW``: comma-separated host names or IPs that monitor webhooks may call
        besides loopback."""
        return [h.strip() for h in self.webhook_allow.split(",") if h.strip()]
