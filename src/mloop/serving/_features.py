"""Online features in the server: ``POST /v2/features/{service}/online``, the join that fills a deployment's feature
service into its requests before they are scored, and the freshness of each view as a Prometheus series.

Readers are built from the applied definitions off the hot path (at start and whenever the event bus says something
changed) and swapped whole; a request costs a dict lookup and the online store's key reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput, NotFound
from mloop.serving._codec import ColumnBlock
from mloop.serving._replies import Reply, failure, json_reply
from mloop.serving._routes import Call, Route

if TYPE_CHECKING:
    from mloop.features import FeatureRegistry, OnlineReader, OnlineStore
    from mloop.workspace import Workspace

log = logging.getLogger("mloop.serving")

MAX_ENTITIES = 10_000
FEATURES_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["entities"],
    "properties": {
        "entities": {
            "description": "The entities to read: columns {join_key: [values]} or rows [{join_key: value}].",
            "oneOf": [
                {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
                {"type": "array", "items": {"type": "object"}, "minItems": 1},
            ],
        },
    },
    "additionalProperties": False,
}


def entity_columns(entities: Any, keys: Sequence[str], field: str = "entities") -> dict[str, list[Any]]:
    """The join-key columns of ``entities`` (columns or rows), checked: every key present, equal lengths, scalar
    values, at most ``MAX_ENTITIES`` rows."""
    if isinstance(entities, list):
        if not entities or not all(isinstance(r, dict) for r in entities):
            raise InvalidInput(f"'{field}' as rows must be a non-empty list of objects {{join_key: value}}.", field=field)
        columns: dict[str, list[Any]] = {}
        for key in keys:
            try:
                columns[key] = [row[key] for row in entities]
            except KeyError:
                raise InvalidInput(f"'{field}': a row lacks the join key {key!r} (needed: {', '.join(keys)}).", field=key) from None
    elif isinstance(entities, dict):
        missing = [k for k in keys if k not in entities]
        if missing:
            raise InvalidInput(f"'{field}' lacks the join key {missing[0]!r} (needed: {', '.join(keys)}).", field=missing[0])
        columns = {k: entities[k] for k in keys}
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if -1 in lengths or 0 in lengths or len(lengths) > 1:
            raise InvalidInput(f"'{field}': each join key needs a non-empty list of values, all of one length.", field=field)
    else:
        raise InvalidInput(f"'{field}' must be columns {{join_key: [values]}} or rows [{{join_key: value}}].", field=field)
    for key, values in columns.items():
        if len(values) > MAX_ENTITIES:
            raise InvalidInput(f"'{field}': at most {MAX_ENTITIES} entities per request, got {len(values)}.", field=field)
        for value in values:
            if value is None or isinstance(value, (dict, list, float)):
                raise InvalidInput(f"Join key {key!r} must be a string, integer or boolean, got {str(value)[:40]!r}.", field=key)
    return columns


def _array(values: list[Any]) -> np.ndarray:
    """A logged column: float64 (NaN for missing) where every value is a number or missing, else objects."""
    if any(v is None for v in values):
        try:
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        except (TypeError, ValueError):
            return np.array(values, dtype=object)
    array = np.asarray(values)
    return array.astype(object) if array.dtype.kind in "US" else array


@dataclass(frozen=True)
class FeatureJoin:
    """A deployment's feature service, filled into each request: the request carries the join keys (and any
    request-time features); the online features are added before scoring."""

    service: str
    reader: OnlineReader

    @property
    def key_columns(self) -> list[str]:
        return self.reader.key_columns

    def fill(self, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The request's columns with the service's features added (None where an entity has no fresh row). A
        feature the service provides may not be sent: the store's value is what the model is trained and logged on."""
        keys = entity_columns(columns, self.reader.key_columns, field="inputs")
        sent = [c for c in self.reader.columns if c in columns and c not in keys]
        if sent:
            raise InvalidInput(f"Field {sent[0]!r} comes from feature service {self.service!r}; send only the join keys "
                               f"({', '.join(self.reader.key_columns)}) and request-time fields.", field=sent[0])
        return {**columns, **self.reader.get(keys)}

    def inputs(self, joined: dict[str, list[Any]], model_columns: Sequence[str]) -> dict[str, list[Any]]:
        """What the model is given: the request's own fields (an unknown one is still refused) and those of the keys
        and features it takes."""
        provided = self.reader.columns
        return {c: v for c, v in joined.items() if c in model_columns or c not in provided}

    @staticmethod
    def logged(joined: Mapping[str, list[Any]]) -> ColumnBlock:
        """The joined columns as the prediction log stores them (keys, request fields and online values)."""
        arrays = {name: _array(values) for name, values in joined.items()}
        return ColumnBlock(arrays, len(next(iter(arrays.values()))))


class OnlineFeatures:
    """The workspace's online store and one reader per feature service, rebuilt by :meth:`refresh`."""

    def __init__(self, registry: FeatureRegistry, open_store: Any) -> None:
        self.registry = registry
        self._open_store = open_store
        self._store: OnlineStore | None = None
        self._readers: dict[str, OnlineReader] = {}
        self._problems: dict[str, str] = {}
        self._views: list[str] = []
        self._lock = threading.Lock()

    @property
    def store(self) -> OnlineStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._open_store()
        assert self._store is not None
        return self._store

    def refresh(self) -> None:
        """Rebuild every service's reader from the applied definitions; a service that cannot be read (a view gone)
        answers with the reason instead of stale columns."""
        from mloop.features import OnlineReader

        readers: dict[str, OnlineReader] = {}
        problems: dict[str, str] = {}
        services = self.registry.services()
        for name in services:
            try:
                readers[name] = OnlineReader(self.store, self.registry, service=name)
            except Exception as exc:  # noqa: BLE001 - reported on use
                problems[name] = getattr(exc, "message", str(exc))
        self._readers, self._problems, self._views = readers, problems, sorted(self.registry.views())

    def reader(self, service: str) -> OnlineReader:
        found = self._readers.get(service)
        if found is None:
            if service in self._problems:
                raise InvalidInput(f"Feature service {service!r} cannot be read: {self._problems[service]}", field="service")
            raise NotFound(f"No feature service {service!r}; services: {', '.join(sorted(self._readers)) or 'none applied'} "
                           "(`mloop features apply FILE`).")
        return found

    def join(self, service: str) -> FeatureJoin:
        return FeatureJoin(service, self.reader(service))

    def ages(self) -> dict[str, float | None]:
        """Seconds since the newest materialised event of each view (None: materialised, nothing yet; absent: never)."""
        from mloop.features._online import age_seconds

        out: dict[str, float | None] = {}
        for view in self._views:
            try:
                out[view] = age_seconds(self.store, view)
            except NotFound:
                continue
        return out

    def watched_ages(self, service: str | None, views: list[str] | None) -> dict[str, float | None]:
        """The age of each of ``views`` (or of the views ``service`` reads): None where a view holds no row yet. Read from
        the definitions and the store each time: a freshness monitor's tick, not a request."""
        from mloop.features._online import age_seconds

        known = self.registry.views()
        if views is None:
            if service is None:
                raise InvalidInput("Name the views to watch (freshness.views), or deploy with a feature service.", field="freshness.views")
            views = [view.name for view, _ in self.registry.resolve(service=service)]
        out: dict[str, float | None] = {}
        for view in views:
            if view not in known:
                raise InvalidInput(f"freshness.views: no feature view {view!r}; views: {', '.join(sorted(known)) or 'none applied'}.",
                                   field="freshness.views")
            try:
                out[view] = age_seconds(self.store, view)
            except NotFound:  # never materialised
                out[view] = None
        return out

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- the HTTP route --------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("POST", "/v2/features/{service}/online", "predictor", self._online, fast=True, body=FEATURES_BODY,
                      summary="A feature service's online values for the given entities: "
                              '{"entities": {"driver_id": [1, 2]}} → {"service", "features": {column: [values]}}; '
                              "null where an entity has no row or its row is past the view's TTL.")]

    async def _online(self, call: Call) -> Reply:
        from mloop.serving._inference import parse_json

        try:
            reader = self.reader(call.params["service"])
            body = parse_json(call.body)
            if not isinstance(body, dict) or set(body) != {"entities"}:
                raise InvalidInput('The body must be {"entities": {join_key: [values]}} (or rows [{join_key: value}]).', field="entities")
            got = reader.get(entity_columns(body["entities"], reader.key_columns))
            return json_reply({"service": call.params["service"], "features": got})
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return failure(exc)


class FreshnessCollector:
    """``mloop_feature_age_seconds{view}`` at scrape time: seconds since the newest event materialised for each view
    (a view never materialised has no sample). Read from the online store's view states, never on a request."""

    def __init__(self, features: OnlineFeatures) -> None:
        self.features = features

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("mloop_feature_age_seconds", "Seconds since the newest event materialised for a feature view", labels=["view"])
        try:
            for view, age in self.features.ages().items():
                if age is not None:
                    family.add_metric([view], age)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the online store hiccuped
            log.warning("feature freshness unavailable: %s", exc)
        yield family

    def describe(self) -> list[Any]:
        return []


def online_features(workspace: Workspace) -> OnlineFeatures:
    """The workspace's feature definitions over its online store (``MLOOP_ONLINE_STORE``, opened on first use)."""
    from mloop.features import FeatureRegistry, open_online_store

    return OnlineFeatures(FeatureRegistry(workspace.store, workspace.bus),
                          lambda: open_online_store(workspace.settings.online_store, workspace_root=workspace.root))
