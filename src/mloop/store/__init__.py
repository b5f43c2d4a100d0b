"""mloop's own metadata (deployments, manifests, monitors, alerts, audit, events) on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

from mloop.names import check_name
from mloop.store._deployments import Deployment, DeploymentRepository, ServingConfig
from mloop.store._engine import create_engine, normalize_url, redact_url
from mloop.store._features import DefinitionRow, FeatureRepository
from mloop.store._keys import ApiKey, ApiKeyRepository, secret_digest, split_key
from mloop.store._loop import RESULTS, AttemptRow, LoopPolicyRow, LoopRepository, StepRow
from mloop.store._monitors import MonitorRepository, MonitorRow, WindowRow
from mloop.store._records import AlertLog, AuditEntry, AuditLog, ManifestRepository, manifest_digest
from mloop.store._rollouts import DecisionRow, PolicyRow, RolloutRepository
from mloop.store._schema import events as events_table

__all__ = [
    "ApiKey",
    "ApiKeyRepository",
    "secret_digest",
    "split_key",
    "AlertLog",
    "AuditEntry",
    "AuditLog",
    "DefinitionRow",
    "Deployment",
    "DeploymentRepository",
    "FeatureRepository",
    "ManifestRepository",
    "MonitorRepository",
    "RESULTS",
    "AttemptRow",
    "LoopPolicyRow",
    "LoopRepository",
    "StepRow",
    "DecisionRow",
    "PolicyRow",
    "RolloutRepository",
    "MonitorRow",
    "WindowRow",
    "MetadataStore",
    "ServingConfig",
    "check_name",
    "create_engine",
    "current_revision",
    "head_revision",
    "upgrade",
    "events_table",
    "manifest_digest",
    "normalize_url",
    "redact_url",
]


class MetadataStore:
    """One database holding mloop's tables; ``migrate()`` brings it to the current schema."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine: Engine = create_engine(self.url)
        self.deployments = DeploymentRepository(self.engine)
        self.audit = AuditLog(self.engine)
        self.alerts = AlertLog(self.engine)
        self.manifests = ManifestRepository(self.engine)
        self.monitors = MonitorRepository(self.engine)
        self.api_keys = ApiKeyRepository(self.engine)
        self.rollouts = RolloutRepository(self.engine)
        self.loop = LoopRepository(self.engine)
        self.features = FeatureRepository(self.engine)

    def migrate(self) -> None:
        from mloop.store._migrate import upgrade

        upgrade(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite): all or nothing."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"MetadataStore({redact_url(self.url)!r})"


def __getattr__(name: str) -> object:
    """Migrations load Alembic (~0.1 s): only the commands that migrate import them."""
    if name in ("upgrade", "current_revision", "head_revision"):
        from mloop.store import _migrate

        return getattr(_migrate, name)
    raise AttributeError(f"module 'mloop.store' has no attribute {name!r}")
