"""A read-only view of MLflow's SQL store for the lookups a command or a server makes most: registered models,
versions and aliases, experiments and runs.

MLflow's own client builds its SQLAlchemy stores on first use, which imports about 1.5 s of modules (its GenAI
and Alembic stacks among them) before the first query; a command that only lists models waited for that. These
few reads go straight to the same tables with SQLAlchemy Core instead. They never write, and every answer is
checked against MLflow's client in the tests. If the store is not SQL, or its schema is not the one these tables
describe (another MLflow release), ``CatalogUnavailable`` is raised and callers use MLflow's client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

_meta = sa.MetaData()
_registered_models = sa.Table(
    "registered_models", _meta, sa.Column("name", sa.String), sa.Column("creation_time", sa.BigInteger), sa.Column("workspace", sa.String)
)
_model_versions = sa.Table(
    "model_versions", _meta,
    sa.Column("name", sa.String), sa.Column("version", sa.Integer), sa.Column("creation_time", sa.BigInteger), sa.Column("source", sa.String),
    sa.Column("run_id", sa.String), sa.Column("current_stage", sa.String), sa.Column("workspace", sa.String),
)
_aliases = sa.Table(
    "registered_model_aliases", _meta, sa.Column("alias", sa.String), sa.Column("version", sa.Integer), sa.Column("name", sa.String),
    sa.Column("workspace", sa.String),
)
_version_tags = sa.Table(
    "model_version_tags", _meta, sa.Column("key", sa.String), sa.Column("value", sa.String), sa.Column("name", sa.String),
    sa.Column("version", sa.Integer), sa.Column("workspace", sa.String),
)
_experiments = sa.Table(
    "experiments", _meta, sa.Column("experiment_id", sa.Integer), sa.Column("name", sa.String), sa.Column("lifecycle_stage", sa.String),
    sa.Column("workspace", sa.String),
)
_runs = sa.Table(
    "runs", _meta, sa.Column("run_uuid", sa.String), sa.Column("name", sa.String), sa.Column("status", sa.String),
    sa.Column("start_time", sa.BigInteger), sa.Column("lifecycle_stage", sa.String), sa.Column("experiment_id", sa.Integer),
)
_run_tags = sa.Table("tags", _meta, sa.Column("key", sa.String), sa.Column("value", sa.String), sa.Column("run_uuid", sa.String))
_latest_metrics = sa.Table(
    "latest_metrics", _meta, sa.Column("key", sa.String), sa.Column("value", sa.Float), sa.Column("is_nan", sa.Boolean), sa.Column("run_uuid", sa.String)
)

_WORKSPACE = "default"
_DELETED = "Deleted_Internal"  # the stage MLflow gives a version it is deleting


class CatalogUnavailable(Exception):
    """The store cannot be read directly: use MLflow's client. ``lasting`` when it never will be (not SQL, MLflow
    workspaces on, another schema); else a passing trouble (a lock, a restarting database) worth retrying later."""

    def __init__(self, message: str, *, lasting: bool = True) -> None:
        super().__init__(message)
        self.lasting = lasting


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: int
    run_id: str | None
    source: str
    created_at: float
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class RunSummary:
    """One run as `mloop runs list` shows it."""

    run_id: str
    name: str
    experiment: str
    status: str
    start_time: float
    metrics: dict[str, float]


class MlflowCatalog:
    """Reads of one MLflow tracking/registry database. Safe to share between threads (SQLAlchemy's pool)."""

    def __init__(self, tracking_uri: str) -> None:
        import os

        from mloop.store import normalize_url

        scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise CatalogUnavailable(f"{scheme!r} stores are read through MLflow's client")
        if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("1", "true", "yes"):
            raise CatalogUnavailable("MLflow workspaces are on: the client knows which one is active")
        url = normalize_url(tracking_uri)
        if scheme == "sqlite":  # read-only: never creates a database file, never takes a write lock
            from urllib.parse import quote

            path = quote(url.removeprefix("sqlite:///"))
            self._engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", poolclass=sa.pool.NullPool)
        else:
            self._engine = sa.create_engine(url, pool_pre_ping=True)

    def _rows(self, query: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(query).all())
        except sa.exc.SQLAlchemyError as exc:
            text = str(exc).lower()
            schema = any(s in text for s in ("no such table", "no such column", "undefinedtable", "undefinedcolumn", "does not exist"))
            raise CatalogUnavailable(str(exc).splitlines()[0], lasting=schema) from None

    def close(self) -> None:
        self._engine.dispose()

    # -- the registry ---------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        rows = self._rows(sa.select(_registered_models.c.name).where(_registered_models.c.workspace == _WORKSPACE).order_by(_registered_models.c.name))
        return [r.name for r in rows]

    def aliases(self, name: str | None = None) -> dict[str, dict[str, int]]:
        """``{model: {alias: version}}`` for one model or all."""
        query = sa.select(_aliases.c.name, _aliases.c.alias, _aliases.c.version).where(_aliases.c.workspace == _WORKSPACE)
        if name is not None:
            query = query.where(_aliases.c.name == name)
        out: dict[str, dict[str, int]] = {}
        for r in self._rows(query):
            out.setdefault(r.name, {})[r.alias] = int(r.version)
        return out

    def versions(self, name: str | None = None, version: int | None = None) -> list[VersionRecord]:
        """Versions in (name, version) order, with their aliases and tags; one model, one version, or all."""
        mv = _model_versions
        query = sa.select(mv).where(mv.c.workspace == _WORKSPACE, sa.or_(mv.c.current_stage.is_(None), mv.c.current_stage != _DELETED))
        tags_query = sa.select(_version_tags).where(_version_tags.c.workspace == _WORKSPACE)
        if name is not None:
            query = query.where(mv.c.name == name)
            tags_query = tags_query.where(_version_tags.c.name == name)
        if version is not None:
            query = query.where(mv.c.version == version)
            tags_query = tags_query.where(_version_tags.c.version == version)
        tags: dict[tuple[str, int], dict[str, str]] = {}
        for t in self._rows(tags_query):
            tags.setdefault((t.name, int(t.version)), {})[t.key] = t.value
        by_version: dict[tuple[str, int], list[str]] = {}
        for model, aliases in self.aliases(name).items():
            for alias, v in aliases.items():
                by_version.setdefault((model, v), []).append(alias)
        return [
            VersionRecord(
                r.name, int(r.version), r.run_id or None, r.source or "", (r.creation_time or 0) / 1000,
                tuple(sorted(by_version.get((r.name, int(r.version)), []))), tags.get((r.name, int(r.version)), {}),
            )
            for r in self._rows(query.order_by(mv.c.name, mv.c.version))
        ]

    # -- tracking -------------------------------------------------------------------------------

    def experiments(self) -> dict[int, str]:
        query = sa.select(_experiments.c.experiment_id, _experiments.c.name).where(
            _experiments.c.workspace == _WORKSPACE, _experiments.c.lifecycle_stage == "active"
        )
        return {int(r.experiment_id): r.name for r in self._rows(query)}

    def count_runs(self, experiment_ids: list[int]) -> int:
        """How many active runs these experiments hold."""
        query = sa.select(sa.func.count()).select_from(_runs).where(_runs.c.experiment_id.in_(experiment_ids), _runs.c.lifecycle_stage == "active")
        return int(self._rows(query)[0][0])

    def runs(self, experiment_ids: list[int], limit: int, offset: int = 0) -> list[RunSummary]:
        """Active runs of these experiments, newest first (after skipping ``offset``), with their latest metrics."""
        names = self.experiments()
        query = (
            sa.select(_runs).where(_runs.c.experiment_id.in_(experiment_ids), _runs.c.lifecycle_stage == "active")
            .order_by(_runs.c.start_time.desc(), _runs.c.run_uuid).offset(offset).limit(limit)
        )
        runs = self._rows(query)
        metrics: dict[str, dict[str, float]] = {}
        if runs:
            ids = [r.run_uuid for r in runs]
            for m in self._rows(sa.select(_latest_metrics).where(_latest_metrics.c.run_uuid.in_(ids))):
                metrics.setdefault(m.run_uuid, {})[m.key] = float("nan") if m.is_nan else float(m.value)
        return [
            RunSummary(r.run_uuid, r.name or "", names.get(int(r.experiment_id), str(r.experiment_id)), r.status or "",
                      (r.start_time or 0) / 1000, metrics.get(r.run_uuid, {}))
            for r in runs
        ]

    def runs_tagged(self, key: str) -> list[tuple[RunSummary, str]]:
        """Active runs of active experiments that carry the tag ``key``, newest first, with its value (no metrics)."""
        names = self.experiments()
        query = (
            sa.select(_runs, _run_tags.c.value).join(_run_tags, _run_tags.c.run_uuid == _runs.c.run_uuid)
            .where(_run_tags.c.key == key, _runs.c.lifecycle_stage == "active", _runs.c.experiment_id.in_(list(names)))
            .order_by(_runs.c.start_time.desc(), _runs.c.run_uuid)
        )
        return [(RunSummary(r.run_uuid, r.name or "", names[int(r.experiment_id)], r.status or "", (r.start_time or 0) / 1000, {}), r.value)
                for r in self._rows(query)]
