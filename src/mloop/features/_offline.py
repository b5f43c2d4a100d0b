"""Training data from the applied definitions: ``get_historical_features`` resolves ``view:feature`` references (or a
feature service) to their views' sources, keys, timestamps and TTLs, and runs the exact point-in-time join."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mloop.errors import InvalidInput
from mloop.features._definitions import FeatureRegistry
from mloop.features._historical import ViewSource, historical_join

if TYPE_CHECKING:
    import pandas as pd

    from mloop.features._historical import Source


def view_sources(registry: FeatureRegistry, features: list[str] | None = None, service: str | None = None) -> list[ViewSource]:
    """The views to join, each with only the features asked for."""
    entities = registry.entities()
    sources = []
    for view, names in registry.resolve(features, service):
        source, path = view.source, view.parquet_path("training joins read")
        keys = [k for e in view.entities for k in entities[e].join_keys]
        sources.append(ViewSource(view.name, path, keys, source.timestamp, names, created_timestamp=source.created_timestamp, ttl=view.ttl))
    return sources


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
