"""Feature definitions as validated data: entities (join keys), feature views (a source with its event and created
timestamps, a TTL, typed features) and feature services (the named features a model uses), read from YAML or JSON
with errors that name the file, the line and the field.

```yaml
entities: [{name: driver, join_keys: [driver_id]}]
feature_views:
  - name: driver_stats
    entities: [driver]
    source: {path: data/driver_stats.parquet, timestamp: event_timestamp, created_timestamp: created}
    ttl: 24h
    features: [{name: f0, dtype: float32}, {name: f1, dtype: float32}]
feature_services: [{name: driver_model, features: ["driver_stats:f0", "driver_stats:f1"]}]
```
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from mloop.durations import format_duration, parse_duration
from mloop.errors import InvalidInput, invalid_from

NAME = r"^[A-Za-z_][\w-]*$"
Dtype = Literal["float32", "float64", "int32", "int64", "bool", "string", "timestamp"]
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    """What features are about, and the columns that identify one (``join_keys``)."""

    name: str = Field(pattern=NAME, max_length=64)
    join_keys: list[str] = Field(min_length=1)
    description: str = ""


class Source(_Strict):
    """Where a view's rows are: Parquet or CSV files (``path``, a glob allowed, relative to the definitions file; a name
    ending ``.csv`` or ``.tsv``, optionally ``.gz``/``.zst``, is read as CSV with the features' declared types) or a
    DuckDB ``query``, whose relative file paths are looked up in ``folder`` (default: the definitions file's folder);
    ``timestamp`` is when a value held (its event), ``created_timestamp`` when it was written."""

    path: str | None = Field(default=None, min_length=1)
    query: str | None = Field(default=None, min_length=1)
    timestamp: str = Field(min_length=1)
    created_timestamp: str | None = Field(default=None, min_length=1)
    folder: str | None = Field(default=None, min_length=1, exclude_if=lambda v: v is None)  # left out when unset: older documents stay equal

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.path is None) == (self.query is None):
            raise ValueError("give exactly one of path (Parquet or CSV files, a glob allowed) or query (DuckDB SQL)")
        if self.folder is not None and self.query is None:
            raise ValueError("folder is where a query's relative file paths are read from; a path source is itself relative to the file")
        if self.folder is not None and "," in self.folder:
            raise ValueError(f"folder {self.folder!r} contains a comma, which DuckDB's file_search_path cannot hold: move or link it")
        return self


class Feature(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_]\w*$", max_length=128)
    dtype: Dtype


class FeatureView(_Strict):
    """Typed features of some entities, read from a source; a value older than ``ttl`` is not served or joined."""

    name: str = Field(pattern=NAME, max_length=64)
    entities: list[str] = Field(min_length=1)
    source: Source
    ttl: dt.timedelta | None = None
    features: list[Feature] = Field(min_length=1)
    description: str = ""

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value, "a TTL")

    @field_serializer("ttl")
    def _ttl_text(self, ttl: dt.timedelta | None) -> str | None:
        return None if ttl is None else format_duration(ttl)

    @model_validator(mode="after")
    def _unique(self) -> FeatureView:
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"features: {twice[0]!r} is declared more than once")
        return self

    def schema_of(self, entities: dict[str, Entity]) -> dict[str, Any]:
        """What a model that uses the view depends on: its join keys, timestamps and typed features."""
        return {"join_keys": [k for e in self.entities for k in entities[e].join_keys], "timestamp": self.source.timestamp,
                "created_timestamp": self.source.created_timestamp, "features": {f.name: f.dtype for f in self.features}}


class FeatureService(_Strict):
    """The features one model uses, as ``view:feature`` references (``view:*`` for all of a view's)."""

    name: str = Field(pattern=NAME, max_length=64)
    features: list[str] = Field(min_length=1)
    description: str = ""

    @field_validator("features")
    @classmethod
    def _refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            if not re.fullmatch(r"[A-Za-z_][\w-]*:(\*|[A-Za-z_]\w*)", ref):
                raise ValueError(f"{ref!r} is not a feature reference: write view:feature (or view:* for all of a view's)")
        return refs


class Definitions(_Strict):
    """One file's entities, views and services, checked together: every name once, every reference resolved."""

    entities: list[Entity] = Field(default_factory=list)
    feature_views: list[FeatureView] = Field(default_factory=list)
    feature_services: list[FeatureService] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Definitions:
        for kind, items in (("entities", self.entities), ("feature_views", self.feature_views), ("feature_services", self.feature_services)):
            names = [i.name for i in items]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{kind}: {twice[0]!r} is defined more than once")
        return self


def _problem(defs: Definitions, known_entities: dict[str, Entity], known_views: dict[str, FeatureView]) -> tuple[list[Any], str] | None:
    """The first reference that resolves to nothing, as (its place in the document, a message with a hint)."""
    entities = {**known_entities, **{e.name: e for e in defs.entities}}
    views = {**known_views, **{v.name: v for v in defs.feature_views}}
    for i, view in enumerate(defs.feature_views):
        for j, name in enumerate(view.entities):
            if name not in entities:
                return (["feature_views", i, "entities", j],
                        f"feature_views[{i}] ({view.name}).entities: no entity {name!r}. Hint: entities: {', '.join(sorted(entities)) or 'none yet'}.")
    for i, service in enumerate(defs.feature_services):
        for j, ref in enumerate(service.features):
            view_name, _, feature = ref.partition(":")
            found = views.get(view_name)
            if found is None:
                known = ", ".join(sorted(views)) or "none yet"
                return (["feature_services", i, "features", j],
                        f"feature_services[{i}] ({service.name}).features: no feature view {view_name!r}. Hint: views: {known}.")
            if feature != "*" and feature not in {f.name for f in found.features}:
                return (["feature_services", i, "features", j],
                        f"feature_services[{i}] ({service.name}).features: view {view_name!r} has no feature {feature!r}. "
                        f"Hint: its features: {', '.join(f.name for f in found.features)}.")
    return None


def load_definitions(path: Path, *, known_entities: dict[str, Entity] | None = None,
                     known_views: dict[str, FeatureView] | None = None) -> Definitions:
    """Read and check a definitions file (references may name what is already applied: ``known_*``); a relative
    source path becomes relative to the file's folder, and a query's ``folder`` is that folder (or relative to it).
    Errors start ``file:line:`` and name the field."""
    import yaml

    from mloop.files import line_of

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"No feature definitions file at {path}.", field="file") from None
    try:
        node, document = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InvalidInput(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML or JSON: {getattr(exc, 'problem', exc)}.", field="file") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path}:1: feature definitions are a mapping of entities, feature_views and feature_services.", field="file")
    for view in document.get("feature_views") or []:
        source = view.get("source") if isinstance(view, dict) else None
        if isinstance(source, dict) and isinstance(source.get("path"), str) and not Path(source["path"]).is_absolute():
            source["path"] = str((path.parent / source["path"]).resolve())
        if isinstance(source, dict) and isinstance(source.get("query"), str) and source.get("path") is None:
            folder = source.get("folder")
            if folder is None or isinstance(folder, str) and folder and not Path(folder).is_absolute():
                source["folder"] = str((path.parent / (folder or ".")).resolve())
    try:
        defs = Definitions.model_validate(document)
    except ValidationError as exc:
        error = invalid_from(exc, default="definitions")
        loc = [p for p in exc.errors()[0].get("loc", ()) if not str(p).startswith("function-")]
        hint = " Hint: check its spelling; entities take name and join_keys, views name, entities, source, ttl and features." \
            if "Extra inputs are not permitted" in error.message else ""
        raise InvalidInput(f"{path}:{line_of(node, loc)}: {error.message}{hint}", field=error.field) from None
    problem = _problem(defs, known_entities or {}, known_views or {})
    if problem is not None:
        loc, message = problem
        raise InvalidInput(f"{path}:{line_of(node, loc)}: {message}", field=".".join(str(p) for p in loc))
    return defs
