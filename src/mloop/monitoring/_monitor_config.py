"""What a monitor watches and when it alarms: a validated configuration, read from YAML or given in Python.

```yaml
monitors:
  - name: inputs
    deployment: flights
    reference: {path: data/reference.parquet}   # or {first_predictions: 5000}
    window: {kind: count, size: 1000}          # count | hourly | daily | streaming
    persistence: {k: 2, n: 3}                  # alarm when 2 of the last 3 windows drifted
    webhooks: [http://127.0.0.1:9000/alerts]
  - name: errors
    deployment: flights
    window: {kind: streaming}
    concept: {detector: adwin, loss: brier}
  - name: slices                             # accuracy per slice and fairness, over labelled predictions
    deployment: flights
    window: {kind: count, size: 2000}          # labelled predictions, in the order their labels arrived
    performance: {groups: [origin, carrier], sensitive: [], bins: 4, threshold: 0.5}
  - name: features-fresh                     # a deployment that fills in a feature service
    deployment: drivers
    freshness: {max_age: 2h}                   # views: default, those of the deployment's feature service
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mloop.errors import InvalidInput, invalid_from
from mloop.monitoring.drift import CORRECTIONS, DETECTORS
from mloop.monitoring.drift._dataset import TESTS, check_floors
from mloop.names import check_name
from mloop.store import MetadataStore, MonitorRow


def _one_of(value: str, valid: Any, what: str, where: str = "") -> str:
    """``value`` if it is one of ``valid``; else the error pydantic reports for the field."""
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}{where}; valid: {', '.join(valid)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """``count``: every ``size`` predictions; ``hourly`` / ``daily``: calendar windows (UTC) of prediction
    time; ``streaming``: the concept detector reads labels as they arrive."""

    kind: Literal["count", "hourly", "daily", "streaming"]
    size: int | None = Field(default=None, ge=30, le=10_000_000)

    @model_validator(mode="after")
    def _size(self) -> Self:
        if self.kind == "count" and self.size is None:
            raise ValueError("count windows need a size (predictions per window, at least 30)")
        if self.kind != "count" and self.size is not None:
            raise ValueError(f"size applies to count windows only, not {self.kind}")
        return self

    @property
    def seconds(self) -> float | None:
        return {"hourly": 3600.0, "daily": 86400.0}.get(self.kind)


class Reference(_Strict):
    """The data that counts as normal: a Parquet/CSV/Arrow file, or the deployment's first predictions."""

    path: str | None = None
    first_predictions: int | None = Field(default=None, ge=30, le=10_000_000)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.path is None) == (self.first_predictions is None):
            raise ValueError("give exactly one of path or first_predictions")
        return self


class Persistence(_Strict):
    """Alarm when at least ``k`` of the last ``n`` windows drifted (a single noisy window does not page anyone)."""

    k: int = Field(default=1, ge=1, le=100)
    n: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _k_le_n(self) -> Self:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) cannot exceed n ({self.n})")
        return self


class Concept(_Strict):
    """A concept-drift detector over the loss of labelled predictions: ``brier`` (squared error of the
    score) or ``error`` (0/1, the score thresholded at 0.5; the only loss DDM and EDDM accept)."""

    detector: str = "adwin"
    loss: Literal["brier", "error"] = "brier"
    one_sided: bool = True
    params: dict[str, float] = Field(default_factory=dict)

    @field_validator("detector")
    @classmethod
    def _known(cls, value: str) -> str:
        return _one_of(value, DETECTORS, "detector")

    @model_validator(mode="after")
    def _binary(self) -> Self:
        if self.detector in ("ddm", "eddm") and self.loss != "error":
            raise ValueError(f"{self.detector} reads 0/1 errors: set loss: error")
        return self


class Freshness(_Strict):
    """Alarm while a feature view's newest materialised row is older than ``max_age`` (``2h``, ``30m``, seconds), or
    while it has none; ``views`` default to those of the deployment's feature service."""

    max_age: float
    views: list[str] | None = Field(default=None, min_length=1)

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        from mloop.durations import parse_duration

        return parse_duration(value, "max_age").total_seconds()


class Performance(_Strict):
    """Accuracy over windows of labelled predictions, overall and per slice of each ``groups`` column (its values, or
    ``bins`` quantile bins of a number), and fairness (Fairlearn) across ``sensitive`` and ``groups`` columns; a score
    at or above ``threshold`` counts as a positive prediction."""

    groups: list[str] = Field(default_factory=list, max_length=20)
    sensitive: list[str] = Field(default_factory=list, max_length=20)
    bins: int = Field(default=4, ge=2, le=20)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    min_rows: int = Field(default=30, ge=10, le=100_000)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.groups and not self.sensitive:
            raise ValueError("name the columns to slice by (groups) or to judge fairness on (sensitive)")
        return self


class MonitorConfig(_Strict):
    """One monitor of one deployment: drift over windows of its predictions (``window``), or the freshness of the
    features it is served (``freshness``)."""

    name: str
    deployment: str
    window: Window | None = None
    freshness: Freshness | None = None
    performance: Performance | None = None
    reference: Reference | None = None
    features: list[str] | None = Field(default=None, min_length=1)
    tests: dict[str, str] = Field(default_factory=dict)
    predictions: bool = True
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: str = "bh"
    floors: dict[str, float] = Field(default_factory=dict)
    drift_share: float = Field(default=0.3, gt=0, le=1)
    persistence: Persistence = Field(default_factory=Persistence)
    concept: Concept | None = None
    webhooks: list[str] = Field(default_factory=list, max_length=10)
    reports: bool = True
    grace_seconds: float = Field(default=5.0, ge=0, le=3600)

    @field_validator("name", "deployment")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_name(value, "name")
        except InvalidInput as exc:
            raise ValueError(exc.message.removesuffix(".")) from None

    @field_validator("correction")
    @classmethod
    def _correction(cls, value: str) -> str:
        return _one_of(value, CORRECTIONS, "correction")

    @field_validator("floors", mode="before")
    @classmethod
    def _floors(cls, value: Any) -> Any:
        if isinstance(value, dict):
            try:
                check_floors(value)  # booleans and strings refused here, before pydantic would coerce them
            except InvalidInput as exc:
                raise ValueError(exc.message.removesuffix(".")) from None
        return value

    @field_validator("tests")
    @classmethod
    def _tests(cls, value: dict[str, str]) -> dict[str, str]:
        for feature, test in value.items():
            _one_of(test, TESTS, "test", f" for {feature!r}")
        return value

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook {url!r} must be an http(s) URL with a host")
            if parts.username or parts.password:
                raise ValueError("webhook URLs must not carry credentials")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.freshness is not None:
            if self.window is not None or self.reference is not None or self.concept is not None:
                raise ValueError("a freshness monitor takes no window, reference or concept; add a second monitor for drift")
            return self
        if self.window is None:
            raise ValueError("give a window (count, hourly, daily or streaming) for drift, or freshness: {max_age: 2h} for features")
        if self.performance is not None:
            if self.window.kind != "count" or self.reference is not None or self.concept is not None:
                raise ValueError("a performance monitor takes a count window of labelled predictions (window: {kind: count, size: 2000}) "
                                 "and no reference or concept")
            return self
        if self.window.kind == "streaming":
            if self.concept is None:
                raise ValueError("streaming windows need a concept detector (concept: {detector: adwin})")
            if self.persistence.n != 1:
                raise ValueError("streaming monitors alarm on each detection; persistence applies to count, hourly and daily windows")
        elif self.reference is None:
            raise ValueError(f"{self.window.kind} windows compare with a reference: give reference.path or reference.first_predictions")
        elif self.concept is not None:
            raise ValueError("concept detectors run on streaming windows; add a second monitor with window: {kind: streaming}")
        return self


def parse_monitor(data: Any, *, where: str = "") -> MonitorConfig:
    """A :class:`MonitorConfig` from plain data; the first problem becomes ``InvalidInput`` naming the field."""
    if isinstance(data, dict) and "effect_floor" in data:
        raise InvalidInput(
            f"{where + '.' if where else ''}effect_floor was replaced by floors, one per effect measure, e.g. floors: "
            "{wasserstein_sd: 0.1, total_variation: 0.075} (W1 in reference standard deviations for numbers, total "
            "variation for categories; see docs/drift.md).", field=f"{where}.effect_floor" if where else "effect_floor",
        )
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc, where, default=None, label="monitor") from None


def load_monitors(path: Path) -> list[MonitorConfig]:
    """Every monitor of a YAML file ``{monitors: [...]}``; errors name the file, the entry and the field."""
    from mloop.files import read_yaml

    data = read_yaml(path, "monitor")
    if not isinstance(data, dict) or not isinstance(data.get("monitors"), list) or not data["monitors"]:
        raise InvalidInput(f"{path} must hold a non-empty list under 'monitors:'.", field="monitors")
    unknown = sorted(str(k) for k in data if k != "monitors")
    if unknown:
        raise InvalidInput(f"{path}: unknown key {unknown[0]!r}; the file holds only 'monitors:'.", field=unknown[0])
    configs = [parse_monitor(item, where=f"monitors[{i}]") for i, item in enumerate(data["monitors"])]
    seen: set[tuple[str, str]] = set()
    for i, config in enumerate(configs):
        key = (config.deployment, config.name)
        if key in seen:
            raise InvalidInput(f"monitors[{i}]: monitor {config.name!r} of {config.deployment!r} appears twice.", field=f"monitors[{i}].name")
        seen.add(key)
    return configs


def register_monitor(store: MetadataStore, config: MonitorConfig | dict[str, Any], *, actor: str = "local") -> MonitorRow:
    """Create or replace a monitor of an existing deployment; a reference file is resolved to an absolute
    path now, so that a server started elsewhere finds it. A changed config restarts its windows."""
    parsed = parse_monitor(config) if isinstance(config, dict) else config
    store.deployments.get(parsed.deployment)
    data = parsed.model_dump(exclude_defaults=False)
    path = reference_file(parsed)
    if path is not None:
        data["reference"]["path"] = str(path)
    return store.monitors.put(parsed.deployment, parsed.name, data, actor=actor)


def reference_file(parsed: MonitorConfig) -> Path | None:
    """The monitor's reference file as an absolute path (``InvalidInput`` when there is none there), or None."""
    if parsed.reference is None or parsed.reference.path is None:
        return None
    path = Path(parsed.reference.path).expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"reference.path: no file at {path}.", field="reference.path")
    return path
