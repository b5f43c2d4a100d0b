"""Configuration: every ``MLOOP_*`` environment variable is declared once, here, and read only through
:class:`Settings`. An unknown ``MLOOP_*`` variable (a typo) is refused with the nearest valid name, and a bad
value names its variable, so nothing silently falls back to a default."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mloop.errors import InvalidInput

PREFIX = "MLOOP_"
# What Kubernetes injects into every pod for a Service named "mloop" (service links): not settings, never refused.
_SERVICE_LINK = re.compile(r"^MLOOP_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$")


class Settings(BaseSettings):
    """Where the workspace lives, which services back it, and how a server behaves.

    ``MLOOP_HOME`` — the workspace folder (default ``./.mloop``).
    ``MLOOP_DATABASE_URL`` — mloop's own metadata (default ``sqlite:///<home>/mloop.db``).
    ``MLOOP_TRACKING_URI`` — MLflow tracking and registry (default ``sqlite:///<home>/mlflow.db``).
    ``MLOOP_LOG_TRANSPORT`` — where servers send the prediction log: ``local`` segments (default),
    ``redis://host:port/db`` or ``nats://host:port`` (then ``mloop log collect`` writes the segments).
    ``MLOOP_ONLINE_STORE`` — the online feature store: ``sqlite:///path`` or ``redis://host:port/db`` (default
    ``sqlite:///<home>/features/online.db``).
    ``MLOOP_LOG_FLUSH_INTERVAL`` — seconds between prediction-log flushes in a server (default 1).
    ``MLOOP_AUTH`` — ``false`` serves without authentication (``mloop serve --no-auth``); refused unless the
    server binds a loopback address.
    ``MLOOP_JWT_PUBLIC_KEY`` — a PEM file: tokens are then RS256 under it (else HS256 under the workspace secret);
    ``MLOOP_JWT_ISSUER`` / ``MLOOP_JWT_AUDIENCE`` (default ``mloop``), ``MLOOP_JWT_LEEWAY`` (seconds, at most 60).
    ``MLOOP_WEBHOOK_ALLOW`` — hosts that alarm webhooks may call besides loopback (comma-separated).
    ``MLOOP_MONITOR_INTERVAL`` — seconds between monitor ticks in a server (0 turns the scheduler off).
    ``MLOOP_ROLLOUT_INTERVAL`` — seconds between the rollout driver's passes in ``mloop serve`` (default 1; 0 turns
    it off): how soon a canary advances, promotes or rolls back once its evidence suffices.
    ``MLOOP_LOOP_INTERVAL`` — seconds between the loop controller's passes in ``mloop serve`` (default 5; 0 turns it
    off): how soon an alarm becomes a retraining attempt and an attempt moves to its next step.
    ``MLOOP_SCHEDULE_INTERVAL`` — seconds between looks at the pipeline schedules in ``mloop serve`` (default 30; 0 turns
    them off): how late after its cron time a scheduled pipeline may start, and how soon a finished run is recorded.
    ``MLOOP_EVENT_POLL_INTERVAL`` — seconds between a server's looks at the event bus: how soon it serves a new
    deployment or alias (default 0.5; each look is one indexed read).

    >>> Settings(home=Path("/tmp/ws")).log_flush_interval
    1.0
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", validate_default=True, allow_inf_nan=False)

    home: Path = Path(".mloop")
    database_url: str | None = None
    tracking_uri: str | None = None
    log_transport: str = "local"
    log_flush_interval: float = Field(default=1.0, gt=0, le=60)
    online_store: str | None = None
    auth: bool = True
    jwt_public_key: Path | None = None
    jwt_issuer: str = "mloop"
    jwt_audience: str = "mloop"
    jwt_leeway: float = Field(default=30.0, ge=0, le=60)
    webhook_allow: str = ""
    monitor_interval: float = Field(default=10.0, ge=0, le=86_400)
    rollout_interval: float = Field(default=1.0, ge=0, le=3600)
    loop_interval: float = Field(default=5.0, ge=0, le=86_400)
    schedule_interval: float = Field(default=30.0, ge=0, le=3600)
    event_poll_interval: float = Field(default=0.5, gt=0, le=60)

    def __init__(self, **values: Any) -> None:
        check_environment(os.environ)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first.get("loc") else ""
            where = name if name in values else f"{PREFIX}{name.upper()}"
            raise InvalidInput(f"{where}: {first.get('msg', 'invalid value')} (got {str(first.get('input'))[:80]!r}).", field=where) from None

    @property
    def webhook_hosts(self) -> list[str]:
        """``MLOOP_WEBHOOK_ALLOW`` as a list of host names or IPs."""
        return [h.strip() for h in self.webhook_allow.split(",") if h.strip()]

    def environment(self) -> dict[str, str]:
        """These settings as ``MLOOP_*`` variables, for a child process that reads them back through ``Settings``
        (uvicorn's worker processes): the one way settings cross a process boundary."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            out[f"{PREFIX}{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


VARIABLES: tuple[str, ...] = tuple(f"{PREFIX}{name.upper()}" for name in Settings.model_fields)


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse any ``MLOOP_*`` variable that is not a setting, naming the nearest valid one. The variables Kubernetes
    injects for a Service named ``mloop`` (``MLOOP_SERVICE_HOST``, ``MLOOP_PORT_8080_TCP``, …) are not settings and
    pass.

    >>> check_environment({"MLOOP_LOG_TRANSPRT": "redis://x"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mloop.errors.InvalidInput: Unknown setting MLOOP_LOG_TRANSPRT: did you mean MLOOP_LOG_TRANSPORT? Valid: ...
    """
    for key in sorted(environ):
        upper = key.upper()
        if upper.startswith(PREFIX) and upper not in VARIABLES and not _SERVICE_LINK.match(upper):
            near = difflib.get_close_matches(upper.removeprefix(PREFIX), [v.removeprefix(PREFIX) for v in VARIABLES], n=1, cutoff=0.6)
            hint = f"did you mean {PREFIX}{near[0]}?" if near else "no setting has a similar name."
            raise InvalidInput(f"Unknown setting {key}: {hint} Valid: {', '.join(VARIABLES)}.", field=key)
