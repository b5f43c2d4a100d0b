"""Training data from the applied definitions: ``get_historical_features`` resolves ``view:feature`` references (or a
feature service) to their views' sources, keys, timestamps and TTLs, and runs the exact point-in-time join."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mloop.errors import InvalidInput
from mloop.features._definitions import FeatureRegistry
from mloop.features._historical import Query, ViewSource, historical_join
from mloop.features._spec import Entity, FeatureView

if TYPE_CHECKING:
    import pandas as pd

    from mloop.features._historical import Source


def reads(view: FeatureView) -> str | Query:
    """Where ``view``'s rows are: its Parquet or CSV path (or glob), or its query with the folder its paths are read from."""
    source = view.source
    return source.path if source.path is not None else Query(source.query or "", source.folder)


def view_source(view: FeatureView, entities: dict[str, Entity], features: Sequence[str] | None = None) -> ViewSource:
    """What a join reads of ``view`` (its ``features``, default all): its files or query, keys, timestamps, TTL and the
    declared types a CSV is read with."""
    source = view.source
    names = [f.name for f in view.features] if features is None else list(features)
    return ViewSource(view.name, reads(view), [k for e in view.entities for k in entities[e].join_keys], source.timestamp, names,
                      created_timestamp=source.created_timestamp, ttl=view.ttl, dtypes={f.name: f.dtype for f in view.features if f.name in names})


def view_sources(registry: FeatureRegistry, features: list[str] | None = None, service: str | None = None) -> list[ViewSource]:
    """The views to join, each with only the features asked for."""
    entities = registry.entities()
    return [view_source(view, entities, names) for view, names in registry.resolve(features, service)]


def get_historical_features(registry: FeatureRegistry, entity_rows: Source, *, features: list[str] | None = None, service: str | None = None,
                            timestamp: str = "event_timestamp", as_of: Literal["known", "event"] = "known", full_names: bool = False,
                            out: str | Path | None = None) -> pd.DataFrame | None:
    """``entity_rows`` (a DataFrame, an Arrow table or a Parquet path: join keys and ``timestamp``) in their order, with
    each asked feature as of each row's time — as of known time by default (a value written after the row's time is
    not used), or ``as_of="event"`` (Feast's rule). With ``out``, written there (atomically) and None returned."""
    views = view_sources(registry, features, service)
    return historical_join(entity_rows, timestamp, views, as_of=as_of, full_names=full_names, out=out)


def parse_features(text: str | None) -> list[str] | None:
    """``a:b,c:d`` → its references (None for None)."""
    if text is None:
        return None
    refs = [r.strip() for r in text.split(",") if r.strip()]
    if not refs:
        raise InvalidInput("--features: name at least one view:feature.", field="--features")
    return refs
