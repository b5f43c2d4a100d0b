"""Applying feature definitions to a workspace: each entity, view and service stored as a new version when it
changed, in one transaction; a change that would break what uses a view (its join keys or timestamp changed, a
feature removed or retyped) is refused unless asked for, naming what broke. Reading back the applied definitions and
resolving a model's ``view:feature`` references (or a service) to the views and features to join."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mloop.errors import InvalidInput, NotFound
from mloop.events import FEATURES_CHANGED, EventBus
from mloop.features._spec import Definitions, Entity, FeatureService, FeatureView
from mloop.store import MetadataStore


@dataclass(frozen=True)
class Change:
    """What applying did to one definition: ``created``, ``updated`` (a new version) or ``unchanged``."""

    kind: str
    name: str
    version: int
    action: str
    note: str = ""


def incompatible(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why a view's new schema breaks what used the old one (empty: it does not): keys, timestamps, features gone or
    retyped. Added features and a changed TTL, source or description are compatible."""
    problems = []
    if old["join_keys"] != new["join_keys"]:
        problems.append(f"join keys {old['join_keys']} → {new['join_keys']}")
    for column in ("timestamp", "created_timestamp"):
        if old[column] != new[column]:
            problems.append(f"{column} {old[column]!r} → {new[column]!r}")
    for name, dtype in old["features"].items():
        if name not in new["features"]:
            problems.append(f"feature {name!r} removed")
        elif new["features"][name] != dtype:
            problems.append(f"feature {name!r} {dtype} → {new['features'][name]}")
    return problems


class FeatureRegistry:
    """The workspace's applied definitions (newest versions) over its metadata store; with a ``bus``, each apply that
    changed something publishes ``features.changed`` in its transaction, so servers rebuild their feature readers."""

    def __init__(self, store: MetadataStore, bus: EventBus | None = None) -> None:
        self.store = store
        self.bus = bus

    def entities(self) -> dict[str, Entity]:
        return {r.name: Entity.model_validate(r.document) for r in self.store.features.all_latest("entity")}

    def views(self) -> dict[str, FeatureView]:
        return {r.name: FeatureView.model_validate(r.document) for r in self.store.features.all_latest("view")}

    def services(self) -> dict[str, FeatureService]:
        return {r.name: FeatureService.model_validate(r.document) for r in self.store.features.all_latest("service")}

    def apply(self, defs: Definitions, *, actor: str = "local", allow_incompatible: bool = False) -> list[Change]:
        """Store what changed, all or nothing; every incompatible change is named before anything is written."""
        entities = {**self.entities(), **{e.name: e for e in defs.entities}}
        planned: list[tuple[str, str, dict[str, Any], dict[str, Any] | None, str]] = []
        refused: list[str] = []
        for kind, items in (("entity", defs.entities), ("view", defs.feature_views), ("service", defs.feature_services)):
            for item in items:
                document = item.model_dump(mode="json")
                schema = item.schema_of(entities) if isinstance(item, FeatureView) else None
                latest = self.store.features.latest(kind, item.name)
                if latest is not None and latest.document == document:
                    continue
                note = ""
                if latest is not None and kind == "view" and latest.schema is not None and schema is not None:
                    problems = incompatible(latest.schema, schema)
                    if problems and not allow_incompatible:
                        refused.append(f"feature view {item.name!r} (version {latest.version}): {'; '.join(problems)}")
                    note = "; ".join(problems)
                if latest is not None and kind == "entity" and latest.document["join_keys"] != document["join_keys"]:
                    users = [v.name for v in self.views().values() if item.name in v.entities]
                    if users and not allow_incompatible:
                        refused.append(f"entity {item.name!r}: join keys {latest.document['join_keys']} → {document['join_keys']} "
                                       f"would break views {users}")
                planned.append((kind, item.name, document, schema, note))
        if refused:
            raise InvalidInput("Incompatible change(s), nothing applied: " + "; ".join(refused)
                               + ". Models trained on these views would be served other columns; make a new view, or pass --allow-incompatible.",
                               field="feature_views")
        changes = []
        with self.store.transaction() as conn:
            for kind, name, document, schema, note in planned:
                version = self.store.features.put(conn, kind, name, document, schema, actor=actor)
                changes.append(Change(kind, name, version, "created" if version == 1 else "updated", note))
            if changes and self.bus is not None:
                self.bus.publish(conn, FEATURES_CHANGED, {"changed": [f"{c.kind}:{c.name}@{c.version}" for c in changes]})
        done = {(c.kind, c.name) for c in changes}
        for kind, items in (("entity", defs.entities), ("view", defs.feature_views), ("service", defs.feature_services)):
            for item in items:
                if (kind, item.name) not in done:
                    latest = self.store.features.latest(kind, item.name)
                    changes.append(Change(kind, item.name, latest.version if latest else 0, "unchanged"))
        return changes

    def resolve(self, features: list[str] | None = None, service: str | None = None) -> list[tuple[FeatureView, list[str]]]:
        """``view:feature`` references (``view:*`` for all), or a service's, as (view, its features) in first-named order."""
        if (features is None) == (service is None):
            raise InvalidInput("Name the features (view:feature,…) or a feature service, one of the two.", field="features")
        if service is not None:
            found = self.services().get(service)
            if found is None:
                raise NotFound(f"No feature service {service!r}; `mloop features list` shows them.")
            features = found.features
        assert features is not None
        views = self.views()
        picked: dict[str, list[str]] = {}
        for ref in features:
            view_name, sep, feature = ref.partition(":")
            view = views.get(view_name)
            if not sep or view is None:
                raise InvalidInput(f"features: {ref!r} names no applied view (write view:feature; views: {', '.join(sorted(views)) or 'none yet'}).",
                                   field="features")
            names = [f.name for f in view.features]
            wanted = names if feature == "*" else [feature]
            if feature != "*" and feature not in names:
                raise InvalidInput(f"features: view {view_name!r} has no feature {feature!r}; it has {', '.join(names)}.", field="features")
            picked.setdefault(view_name, []).extend(f for f in wanted if f not in picked.get(view_name, []))
        return [(views[name], chosen) for name, chosen in picked.items()]
