"""A pipeline as validated data: named steps, each of one kind, whose inputs name other steps' outputs.

```yaml
name: flights
steps:
  - name: data
    ingest: {path: data/flights.parquet}                       # → data (a table)
  - name: split
    split: {input: data, method: time, by: departure, test: 0.2}   # → split.train, split.test
  - name: model
    train: {input: split.train, target: late, callable: "mloop.training:tabular", params: {max_iter: 200}}
  - name: check
    evaluate: {model: model, input: split.test, target: late, gates: ["auc >= 0.6"]}
  - name: publish
    register: {model: model, name: flights, alias: champion, after: [check]}
```

A reference is ``step`` (its main output) or ``step.output``. Every kind states what it takes and what it makes
(:data:`KINDS`), so the DAG is checked before anything runs: unknown keys, a missing or misspelt input, an input of
the wrong type, a cycle.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mloop.data._validate import ColumnRule

Kind = Literal["ingest", "validate", "call", "features", "split", "train", "tune", "evaluate", "register", "deploy"]
GATE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|>|<|==)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
CALLABLE = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
FEATURE_REF = re.compile(r"^[A-Za-z_][\w-]*:(\*|[A-Za-z_]\w*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ingest(_Strict):
    """Read a table: a file (``path``: Parquet, CSV, Arrow/Feather or HDF5, ``key`` naming the HDF5 table; relative to
    the pipeline's folder), what ``callable(**params)`` returns (a query, data a package ships), or the feature store's
    point-in-time join: ``entities`` (a file of entity rows — join keys, ``timestamp``, labels) with the features of a
    feature ``service`` or the named ``features``, ``as_of`` known time (default) or event time; the views and versions
    it joined are recorded on the runs that use the table, and so in the cards of the models trained on it."""

    path: str | None = Field(default=None, min_length=1)
    key: str | None = None
    callable: str | None = Field(default=None, pattern=CALLABLE)
    params: dict[str, Any] = Field(default_factory=dict)
    entities: str | None = Field(default=None, min_length=1)
    service: str | None = Field(default=None, min_length=1)
    features: list[str] | None = Field(default=None, min_length=1)
    timestamp: str = Field(default="event_timestamp", min_length=1)
    as_of: Literal["known", "event"] = "known"
    full_names: bool = False

    @field_validator("features")
    @classmethod
    def _refs(cls, refs: list[str] | None) -> list[str] | None:
        for ref in refs or []:
            if not FEATURE_REF.match(ref):
                raise ValueError(f"{ref!r} is not a feature reference: write view:feature (or view:* for all of a view's)")
        return refs

    @model_validator(mode="after")
    def _source(self) -> Ingest:
        if sum(v is not None for v in (self.path, self.callable, self.entities)) != 1:
            raise ValueError("give exactly one of path (a file), callable (a function returning the table) or entities "
                             "(entity rows for the feature store's training join)")
        if self.entities is not None and (self.service is None) == (self.features is None):
            raise ValueError("entities: name a feature service (service: NAME) or the features (features: [view:feature, …]), one of the two")
        stray = sorted(f for f in ("service", "features", "timestamp", "as_of", "full_names") if f in self.model_fields_set)
        if self.entities is None and stray:
            raise ValueError(f"{stray[0]}: only a feature-store ingest takes it; give entities (a file of entity rows) too")
        return self


class Drift(_Strict):
    """A statistical check against ``reference``: each column tested (mloop's drift statistics, Benjamini–Hochberg at
    ``alpha``); the check fails when at least ``share`` of the columns drifted."""

    alpha: float = Field(default=0.01, gt=0, lt=1)
    share: float = Field(default=0.3, gt=0, le=1)
    columns: list[str] | None = Field(default=None, min_length=1)


class Validate(_Strict):
    """Check a table against rules for its ``columns`` (types, ranges, allowed values, nulls, uniqueness; ``strict``:
    no other columns) and, with ``reference`` (another step's table), against its distribution; a failure stops the
    run there, naming every broken rule. The output is the table (coerced where a rule asks)."""

    input: str
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    strict: bool = False
    reference: str | None = None
    drift: Drift | None = None

    @model_validator(mode="after")
    def _something(self) -> Validate:
        if not self.columns and self.reference is None:
            raise ValueError("give columns (rules), a reference (a table to compare with), or both")
        if self.drift is not None and self.reference is None:
            raise ValueError("drift: needs a reference table to compare with")
        return self


class Call(_Strict):
    """Any importable ``module:function(frame, **params) -> frame``: a feature step of your own."""

    input: str
    callable: str = Field(pattern=CALLABLE)
    params: dict[str, Any] = Field(default_factory=dict)


class Transformer(_Strict):
    """A scikit-learn transformer class (``module:Class``) and its parameters."""

    callable: str = Field(pattern=CALLABLE)
    params: dict[str, Any] = Field(default_factory=dict)


class Polynomial(_Strict):
    """Polynomial terms up to ``degree``, or only the interactions between columns (``interaction_only``)."""

    degree: int = Field(default=2, ge=2, le=4)
    interaction_only: bool = False


class Select(_Strict):
    """Keep the ``k`` columns with the most mutual information with the target, or those an L1 model keeps
    (``strength``: the inverse of C for a classifier, alpha for a regressor; larger keeps fewer)."""

    method: Literal["mutual_info", "l1"]
    k: int | None = Field(default=None, ge=1)
    strength: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _k(self) -> Select:
        if self.method == "mutual_info" and self.k is None:
            raise ValueError("k: mutual_info selection needs k, the number of columns to keep")
        if self.method == "l1" and self.k is not None:
            raise ValueError("k: L1 selection keeps what the model keeps; set strength instead of k")
        return self


class Features(_Strict):
    """Feature engineering fit on the input: over its numeric ``columns`` (default: every numeric column but the
    target; missing values filled with medians) the ``transformers`` in order, then ``polynomial`` terms, then
    ``select``; other columns pass through. Outputs the transformed ``table`` and the fitted ``transform``, which a
    train or tune step takes as ``features`` so that the registered model takes the raw columns."""

    input: str
    target: str = Field(min_length=1)
    task: Literal["auto", "classification", "regression"] = "auto"
    columns: list[str] | None = Field(default=None, min_length=1)
    transformers: list[Transformer] = Field(default_factory=list)
    polynomial: Polynomial | None = None
    select: Select | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _something(self) -> Features:
        if not self.transformers and self.polynomial is None and self.select is None:
            raise ValueError("give transformers, polynomial or select (a features step that does nothing is a mistake)")
        return self


class Split(_Strict):
    """Split a table: ``random``, ``stratified`` (on ``by``) or ``time`` (ordered by ``by``; the newest ``test``
    share is the test set)."""

    input: str
    method: Literal["random", "stratified", "time"] = "random"
    by: str | None = None
    test: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _by(self) -> Split:
        if self.method != "random" and not self.by:
            raise ValueError(f"by: a {self.method} split needs the column to split by")
        return self


class Train(_Strict):
    """Fit ``callable(frame, target, **params)`` (default: mloop's gradient-boosted pipeline) on the input table;
    with ``features`` (a features step's transform, whose table is the input) the model is that transform followed
    by the fitted estimator."""

    input: str
    target: str = Field(min_length=1)
    features: str | None = None
    callable: str = Field(default="mloop.training:tabular", pattern=CALLABLE)
    params: dict[str, Any] = Field(default_factory=dict)


Metric = Literal["auc", "accuracy", "log_loss", "brier", "rmse", "mae", "r2"]


def _auc() -> list[Metric]:
    return ["auc"]


class Evaluate(_Strict):
    """Score the model on a table: ``metrics`` (``auc``, ``accuracy``, ``log_loss``, ``brier``, ``rmse``, ``mae``,
    ``r2``), and ``gates`` that must hold (``auc >= 0.75``) or the run stops here."""

    model: str
    input: str
    target: str = Field(min_length=1)
    metrics: list[Metric] = Field(default_factory=_auc)
    gates: list[str] = Field(default_factory=list)

    @field_validator("gates")
    @classmethod
    def _gates(cls, gates: list[str]) -> list[str]:
        for gate in gates:
            if not GATE.match(gate):
                raise ValueError(f"{gate!r} is not a gate: write 'metric op number', e.g. 'auc >= 0.75'")
        return gates

    @model_validator(mode="after")
    def _gated(self) -> Evaluate:
        for gate in self.gates:
            match = GATE.match(gate)
            if match and match.group(1) not in self.metrics:
                raise ValueError(f"gates: {gate!r} names {match.group(1)!r}, which is not among the metrics {self.metrics}")
        return self


class Param(_Strict):
    """One tuned parameter: ``choices``, or a range ``low``–``high`` (``type: int`` for integers, ``log`` for a log
    scale, ``step`` for a grid of a range)."""

    low: float | None = None
    high: float | None = None
    type: Literal["float", "int"] = "float"
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _range(self) -> Param:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give choices, or low and high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range), or choices")
        if self.low >= self.high:
            raise ValueError(f"low must be below high, got {self.low} and {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        return self

    def suggest(self, trial: Any, name: str) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.type == "int" or self.step is not None:
            step = self.step or 1
            count = int((self.high - self.low) // step) + 1
            values = [self.low + i * step for i in range(count)]
            return [int(v) for v in values] if self.type == "int" else values
        raise ValueError("a grid sampler needs choices, an int range or a step for each parameter")


class Tune(_Strict):
    """An Optuna study over ``callable``'s parameters (``space``; ``params`` fixed): each trial scored by ``metric``
    over ``folds`` cross-validation folds of the input, ``trials`` in all, ``jobs`` worker processes at once; the best
    parameters are then fit on the whole input (after the ``features`` transform, as for train)."""

    input: str
    target: str = Field(min_length=1)
    features: str | None = None
    callable: str = Field(default="mloop.training:tabular", pattern=CALLABLE)
    params: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Param] = Field(min_length=1)
    metric: Metric = "auc"
    folds: int = Field(default=3, ge=2, le=20)
    trials: int = Field(default=20, ge=1, le=100_000)
    jobs: int = Field(default=1, ge=1, le=64)
    sampler: Literal["tpe", "cmaes", "random", "grid"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "median"
    seed: int = 0

    @model_validator(mode="after")
    def _grid(self) -> Tune:
        if self.sampler == "grid":
            for name, param in self.space.items():
                try:
                    param.grid()
                except ValueError as exc:
                    raise ValueError(f"space: {name}: {exc}") from None
        return self


class Register(_Strict):
    """Register the model as a version of ``name`` (with ``alias``), after the steps in ``after`` (its gates)."""

    model: str
    name: str = Field(min_length=1, max_length=128)
    alias: str | None = Field(default=None, min_length=1, max_length=128)
    after: list[str] = Field(default_factory=list)


class Deploy(_Strict):
    """Serve a registered ``version`` (a register step) as ``deployment``: a new deployment serves the model's
    ``alias``, moved to the version; one that serves another version rolls this one out with ``strategy`` (a
    ``canary`` in ``steps`` of traffic share, judged by the rollout driver; ``blue-green``; ``shadow``; ``bandit``);
    one that already serves it is left alone. After the steps in ``after``. ``feature_service``: a new deployment fills
    that feature service's online values into its requests (``mloop deploy --feature-service`` changes an existing one)."""

    version: str
    deployment: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$", max_length=128)
    strategy: Literal["canary", "blue-green", "shadow", "bandit"] = "canary"
    steps: list[float] | None = Field(default=None, min_length=1)
    alias: str = Field(default="champion", min_length=1, max_length=128)
    feature_service: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][\w.-]*$", max_length=128)
    after: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _steps(self) -> Deploy:
        if self.steps is not None and self.strategy != "canary":
            raise ValueError("steps apply to a canary only")
        return self


#: kind → (the fields that name inputs, with the type each must be; the outputs it makes, the first its main one).
KINDS: dict[str, tuple[type[_Strict], dict[str, str], dict[str, str]]] = {
    "ingest": (Ingest, {}, {"table": "table"}),
    "validate": (Validate, {"input": "table", "reference": "table"}, {"table": "table", "report": "metrics"}),
    "call": (Call, {"input": "table"}, {"table": "table"}),
    "features": (Features, {"input": "table"}, {"table": "table", "transform": "transform"}),
    "split": (Split, {"input": "table"}, {"train": "table", "test": "table"}),
    "train": (Train, {"input": "table", "features": "transform"}, {"model": "model"}),
    "tune": (Tune, {"input": "table", "features": "transform"}, {"model": "model", "best": "metrics"}),
    "evaluate": (Evaluate, {"model": "model", "input": "table"}, {"metrics": "metrics"}),
    "register": (Register, {"model": "model"}, {"version": "version"}),
    "deploy": (Deploy, {"version": "version"}, {"deployment": "metrics"}),
}


def _attr(kind: str) -> str:
    return f"{kind}_" if kind in ("register", "validate") else kind


class Step(_Strict):
    """One named step: exactly one kind's section; ``cache: false`` runs it every time."""

    name: str = Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=64)
    cache: bool = True
    ingest: Ingest | None = None
    validate_: Validate | None = Field(default=None, alias="validate")
    call: Call | None = None
    features: Features | None = None
    split: Split | None = None
    train: Train | None = None
    tune: Tune | None = None
    evaluate: Evaluate | None = None
    register_: Register | None = Field(default=None, alias="register")  # (``register``, ``validate``: names pydantic's base keeps)
    deploy: Deploy | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> Step:
        given = [k for k in KINDS if getattr(self, _attr(k)) is not None]
        if len(given) != 1:
            raise ValueError(f"a step is exactly one of {', '.join(KINDS)}; {self.name!r} has "
                             + (f"{len(given)} ({', '.join(given)})" if given else "none"))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, _attr(k)) is not None)

    @property
    def section(self) -> _Strict:
        return getattr(self, _attr(self.kind))  # type: ignore[no-any-return]

    def inputs(self) -> dict[str, str]:
        """Each input field → the reference it holds (``register.after`` entries as ``after[i]``)."""
        refs = {f: str(getattr(self.section, f)) for f in KINDS[self.kind][1] if getattr(self.section, f) is not None}
        if isinstance(self.section, Register | Deploy):
            refs.update({f"after[{i}]": ref for i, ref in enumerate(self.section.after)})
        return refs


class PipelineSpec(_Strict):
    """A pipeline: its ``name`` (the MLflow experiment ``pipeline-<name>``) and its steps."""

    name: str = Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=64)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PipelineSpec:
        names = [s.name for s in self.steps]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"steps: step name {twice[0]!r} is used more than once")
        return self

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)
