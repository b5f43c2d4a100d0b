"""Configuration from the environment (``MLOOP_*``) with unknown keys rejected."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the workspace lives and which databases back it.

    ``MLOOP_HOME`` — the workspace folder (default ``./.mloop``).
    ``MLOOP_DATABASE_URL`` — mloop's own metadata (default ``sqlite:///<home>/mloop.db``).
    ``MLOOP_TRACKING_URI`` — MLflow tracking and registry (default ``sqlite:///<home>/mlflow.db``).
    """

    model_config = SettingsConfigDict(env_prefix="MLOOP_", extra="forbid")

    home: Path = Path(".mloop")
    database_url: str | None = None
    tracking_uri: str | None = None
