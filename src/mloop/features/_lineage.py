"""Lineage from feature views to training runs: which views (name and version) and which of their features a training
join used, read from one snapshot of the definitions so that the versions recorded are those of the very documents
joined, whatever ``mloop features apply`` does meanwhile; and recording them on a run (a tag per view, for searching,
and a JSON artifact), so that the models trained there carry them into their cards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mloop.errors import NotFound
from mloop.features._definitions import FeatureRegistry
from mloop.features._spec import Entity, FeatureService, FeatureView
from mloop.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

    from mloop.features._historical import Source

_KINDS = ("entity", "view", "service")


class FeatureSnapshot(FeatureRegistry):
    """The applied definitions read once — the newest versions, or the ones ``versions`` names ((kind, name) →
    version) — and answered from memory: a join made through it and the versions :meth:`used` reports are the same
    definitions. Read-only (``apply`` goes to the store as usual); safe to share between threads once made."""

    def __init__(self, store: MetadataStore, versions: Mapping[tuple[str, str], int] | None = None) -> None:
        super().__init__(store)
        rows = {(kind, r.name): r for kind in _KINDS for r in store.features.all_latest(kind)}
        for (kind, name), version in (versions or {}).items():
            found = next((r for r in store.features.history(kind, name) if r.version == version), None)
            if found is None:
                raise NotFound(f"Feature {kind} {name!r} has no version {version} in this workspace; `mloop features list` shows the newest.")
            rows[(kind, name)] = found
        self.versions: dict[tuple[str, str], int] = {key: r.version for key, r in rows.items()}
        self._entities = {name: Entity.model_validate(r.document) for (kind, name), r in rows.items() if kind == "entity"}
        self._views = {name: FeatureView.model_validate(r.document) for (kind, name), r in rows.items() if kind == "view"}
        self._services = {name: FeatureService.model_validate(r.document) for (kind, name), r in rows.items() if kind == "service"}

    def entities(self) -> dict[str, Entity]:
        return dict(self._entities)

    def views(self) -> dict[str, FeatureView]:
        return dict(self._views)

    def services(self) -> dict[str, FeatureService]:
        return dict(self._services)

    def used(self, features: list[str] | None = None, service: str | None = None) -> dict[str, Any]:
        """What a join of ``features`` (``view:feature`` references) or ``service`` uses, as plain data:
        ``{"views": [{"name", "version", "features"}], "service": {"name", "version"} | None}``."""
        views = [{"name": view.name, "version": self.versions[("view", view.name)], "features": list(names)}
                 for view, names in self.resolve(features, service)]
        used_service = {"name": service, "version": self.versions[("service", service)]} if service is not None else None
        return {"views": views, "service": used_service}


def snapshot(registry: FeatureRegistry) -> FeatureSnapshot:
    """``registry`` as a snapshot (itself when it already is one)."""
    return registry if isinstance(registry, FeatureSnapshot) else FeatureSnapshot(registry.store)


class FeatureLineageRun(Protocol):
    """What records feature lineage: :class:`mloop.tracking.TrackedRun` (``Workspace.tracker.start_run(...)``)."""

    def log_feature_views(self, views: list[dict[str, Any]], *, service: dict[str, Any] | None = None) -> None: ...


def used_views(registry: FeatureRegistry, *, features: list[str] | None = None, service: str | None = None) -> dict[str, Any]:
    """The views (name, version, features) and the service (name, version) that ``features`` or ``service`` resolve
    to now — or, given the :class:`FeatureSnapshot` a join was made through, to what that join used."""
    return snapshot(registry).used(features, service)


def record_feature_lineage(run: FeatureLineageRun, registry: FeatureRegistry, *, features: list[str] | None = None,
                           service: str | None = None) -> dict[str, Any]:
    """Record on ``run`` the feature views, versions and features a model trained in your own code used (pass the
    :class:`FeatureSnapshot` you joined through to record exactly its versions); returns what was recorded. Models
    registered from the run list them in their cards; ``mloop features lineage VIEW`` finds the run."""
    used = used_views(registry, features=features, service=service)
    run.log_feature_views(used["views"], service=used["service"])
    return used


def training_data(registry: FeatureRegistry, entity_rows: Source, *, features: list[str] | None = None, service: str | None = None,
                  timestamp: str = "event_timestamp", as_of: Literal["known", "event"] = "known", full_names: bool = False,
                  run: FeatureLineageRun | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The point-in-time training join (:func:`mloop.features.get_historical_features`) and what it used, from one
    snapshot of the definitions; with ``run``, recorded on it."""
    from mloop.features._offline import get_historical_features

    pinned = snapshot(registry)
    used = pinned.used(features, service)  # also refuses an unknown service or feature before the join reads anything
    frame = get_historical_features(pinned, entity_rows, features=features, service=service, timestamp=timestamp, as_of=as_of,
                                    full_names=full_names)
    assert frame is not None  # no ``out``: the frame comes back
    if run is not None:
        run.log_feature_views(used["views"], service=used["service"])
    return frame, used
