"""Feature views with their freshness: entities, features, TTL, and seconds since the newest materialised event."""

from __future__ import annotations

from pydantic import Field

from mloop.operations._core import Context, Http, Operation, Output, operation
from mloop.operations.keys import Nothing


class ViewRow(Output):
    name: str
    version: int
    entities: list[str]
    features: list[str]
    ttl_seconds: float | None
    age_seconds: float | None = Field(description="Seconds since the newest materialised event (None: never materialised or empty).")
    materialized: bool


class FeatureViews(Output):
    entities: dict[str, list[str]] = Field(default_factory=dict, description="Each entity and its join keys.")
    views: list[ViewRow]
    services: dict[str, list[str]] = Field(description="Each feature service and the views it reads.")


def _list(ctx: Context, _: Nothing) -> FeatureViews:
    from mloop.errors import NotFound
    from mloop.features import FeatureRegistry, open_online_store
    from mloop.features._online import age_seconds

    registry = FeatureRegistry(ctx.workspace.store)
    views, rows = registry.views(), {r.name: r for r in ctx.workspace.store.features.all_latest("view")}
    store = open_online_store(ctx.workspace.settings.online_store, workspace_root=ctx.workspace.root) if views else None
    out = []
    try:
        for name, view in sorted(views.items()):
            try:
                assert store is not None
                age, materialized = age_seconds(store, name), True
            except NotFound:
                age, materialized = None, False
            out.append(ViewRow(name=name, version=rows[name].version if name in rows else 1, entities=list(view.entities),
                               features=[f.name for f in view.features], ttl_seconds=view.ttl.total_seconds() if view.ttl else None,
                               age_seconds=age, materialized=materialized))
    finally:
        if store is not None:
            store.close()
    services = {name: sorted({ref.split(":")[0] for ref in getattr(s, "features", [])}) for name, s in registry.services().items()}
    entities = {row.name: list(row.document["join_keys"]) for row in ctx.workspace.store.features.all_latest("entity")}
    return FeatureViews(entities=dict(sorted(entities.items())), views=out, services=services)


LIST = operation(Operation(
    "features.list", "Feature views with their entities, features, TTL and freshness; the entities' join keys; the feature services and the views they read.",
    "viewer", Nothing, FeatureViews, _list, http=Http("GET", "/api/features"), tags=("features",),
))
