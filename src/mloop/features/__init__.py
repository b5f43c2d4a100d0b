"""Feature store: definitions (entities, feature views, feature services) versioned in the metadata store, and the
exact point-in-time training join that gives each entity row the values a model could have known at its time, with
no leakage from later rows or later corrections. Names load lazily, so ``import mloop.features`` imports neither
DuckDB nor pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

if TYPE_CHECKING:
    from mloop.features._definitions import Change, FeatureRegistry
    from mloop.features._historical import Query, ViewSource, historical_join
    from mloop.features._lineage import FeatureSnapshot, record_feature_lineage, training_data, used_views
    from mloop.features._materialize import Materialized, materialize
    from mloop.features._offline import get_historical_features
    from mloop.features._online import OnlineReader, OnlineStore, ViewState, get_online_features, open_online_store, register_online_store
    from mloop.features._skew import SkewReport, skew_check
    from mloop.features._spec import Definitions, Entity, FeatureService, FeatureView, load_definitions

_WHERE: dict[str, str] = {
    **{n: "_definitions" for n in ("Change", "FeatureRegistry")},
    **{n: "_historical" for n in ("Query", "ViewSource", "historical_join")},
    "get_historical_features": "_offline",
    **{n: "_lineage" for n in ("FeatureSnapshot", "record_feature_lineage", "training_data", "used_views")},
    **{n: "_skew" for n in ("SkewReport", "skew_check")},
    **{n: "_materialize" for n in ("Materialized", "materialize")},
    **{n: "_online" for n in ("OnlineReader", "OnlineStore", "ViewState", "get_online_features", "open_online_store", "register_online_store")},
    **{n: "_spec" for n in ("Definitions", "Entity", "FeatureService", "FeatureView", "load_definitions")},
}

__all__ = ["Change", "Definitions", "Entity", "FeatureRegistry", "FeatureService", "FeatureSnapshot", "FeatureView", "Materialized", "OnlineReader",
           "OnlineStore", "Query", "SkewReport", "ViewSource", "ViewState", "get_historical_features", "get_online_features", "historical_join",
           "load_definitions", "materialize", "open_online_store", "record_feature_lineage", "register_online_store", "skew_check", "training_data",
           "used_views"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
