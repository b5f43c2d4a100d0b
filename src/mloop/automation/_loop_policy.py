"""Retraining policies as validated data: when to retrain a deployment (triggers), on what (data), how (the recipe),
whether the challenger may go live (gate), how it goes live (rollout) and how often at most (guards).

```yaml
policies:
  - deployment: flights
    triggers: {monitors: [inputs], kinds: [data_drift, concept_drift], schedule: "0 3 * * 1"}
    data: {rows: 120000, holdout: 0.25, base: data/train.parquet, base_target: delayed}
    recipe: {callable: "mloop.training:tabular", params: {max_iter: 200}}
    gate: {metric: auc, min_effect: 0.0, alpha: 0.05}
    rollout: {strategy: canary, steps: [10, 50, 100]}
    guards: {cooldown_seconds: 86400, max_per_day: 2}
    fallback: {alias: stable}     # serve this while retraining after an alarm; back when the attempt ends
    online: {rows: 5000}          # a champion that learns online learns each 5,000 new labels (each update a version)
```

Everything is checked when the file is applied, so a typo fails then, naming the file, the entry and the field, and
never in the middle of the night when a monitor fires.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mloop.automation._gate import GateSpec
from mloop.errors import InvalidInput, invalid_from

AlarmKind = Literal["data_drift", "concept_drift"]
ALARM_KINDS: tuple[AlarmKind, ...] = ("data_drift", "concept_drift")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerformanceTrigger(_Strict):
    """The champion's own labelled predictions, in blocks of ``rows``: the first block is its reference; a later block
    whose AUC is lower by more than ``min_drop`` (one-sided z-test at ``alpha``, DeLong variances) is a trigger."""

    rows: int = Field(default=20_000, ge=200, le=10_000_000)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_drop: float = Field(default=0.0, ge=0, le=1)


class EstimatedTrigger(_Strict):
    """The champion's AUC estimated without labels (CBPE): its scores on its first ``rows`` labelled predictions are
    calibrated and give the reference estimate; each later block of ``rows`` predictions, labelled or not, whose
    estimate is lower by more than ``min_drop`` (one-sided z-test at ``alpha``, bootstrap variances over
    ``resamples`` draws) is a trigger. For classifiers; it sees covariate shift, not a change of the concept."""

    rows: int = Field(default=5000, ge=200, le=10_000_000)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_drop: float = Field(default=0.0, ge=0, le=1)
    resamples: int = Field(default=200, ge=50, le=5000)


class ImpactSpec(_Strict):
    """Impact-aware data drift: a monitor's ``data_drift`` alarm is a trigger only when it touches the model. ``by:
    importance``: a drifted feature carries at least ``min_share`` of the champion's permutation importance (AUC lost
    when the feature is shuffled, on the newest ``rows`` labelled predictions; computed once per champion). ``by:
    estimated``: the champion's estimated AUC (CBPE, calibrated as ``triggers.estimated`` says) on the predictions of
    the alarm's window is significantly below its reference."""

    by: Literal["importance", "estimated"] = "importance"
    min_share: float = Field(default=0.05, gt=0, le=1)
    rows: int = Field(default=5000, ge=200, le=1_000_000)


class TriggerSpec(_Strict):
    """Which alarms start an attempt: those of ``monitors`` (all of the deployment's when omitted; none when empty),
    of these ``kinds``; with ``performance``, a fall of the champion's AUC below its own reference; with
    ``estimated``, a fall of its AUC estimated from its scores before labels arrive (CBPE); with
    ``schedule``, a cron expression (five fields, UTC: ``0 3 * * 1`` is Mondays at 03:00). ``mloop retrain NAME``
    always can."""

    monitors: list[str] | None = None
    kinds: list[AlarmKind] = Field(default_factory=lambda: list(ALARM_KINDS), min_length=1)
    performance: PerformanceTrigger | None = None
    estimated: EstimatedTrigger | None = None
    schedule: str | None = Field(default=None, max_length=200)
    impact: ImpactSpec | None = None

    @model_validator(mode="after")
    def _impact(self) -> TriggerSpec:
        if self.impact is not None and self.impact.by == "estimated" and self.estimated is None:
            raise ValueError("impact by estimated needs triggers.estimated (it calibrates the champion's scores and keeps the reference)")
        return self

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise ValueError(f"not a cron expression of five fields (minute hour day month weekday): {value!r}")
        return value


class DataSpec(_Strict):
    """The newest ``rows`` labelled predictions from the log (within the last ``days`` if given); the newest
    ``holdout`` share of them is kept for the gate and never trained on; ``base`` (a Parquet, CSV or Arrow file of
    the original training data, its label in ``base_target``) is added to the training rows. With ``refit`` (the
    default) what goes live after the gate is the same recipe fit on all the rows: the gate judged the recipe on rows
    it had not seen, and the newest rows are the most telling."""

    rows: int = Field(default=120_000, ge=100, le=100_000_000)
    days: float | None = Field(default=None, gt=0, le=3650)
    holdout: float = Field(default=0.25, gt=0.0, le=0.5)
    min_rows: int = Field(default=500, ge=50, le=100_000_000)
    refit: bool = True  # once the gate passes, the recipe is fit again on every row of the window, held-out ones too
    base: str | None = None
    base_target: str | None = None

    @model_validator(mode="after")
    def _base(self) -> DataSpec:
        if (self.base is None) != (self.base_target is None):
            raise ValueError("give base and base_target together (the original training file and its label column)")
        if self.base is not None and not Path(self.base).is_file():
            raise ValueError(f"base: no file at {self.base}")
        return self


class RecipeSpec(_Strict):
    """The training code: ``module:function`` called as ``function(frame, target, **params)`` with the feature columns
    and the label, returning a fitted scikit-learn style model (``predict_proba`` or ``predict``) — or a pipeline
    (``pipeline``: its file; ``input``: the table the loop's rows stand for, e.g. ``split.train``; ``model``: its train
    or tune step when it has several; ``set``: overrides as for ``mloop run --set``), whose steps from ``input`` to the
    model run on the loop's rows."""

    callable: str = Field(default="mloop.training:tabular", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _pipeline(cls, data: Any) -> Any:
        """``{pipeline, input, model, set}`` becomes the callable that runs it, with those as its params (recorded as
        the attempt's ``recipe.*`` parameters), the file's path made absolute."""
        if not isinstance(data, dict) or "pipeline" not in data:
            return data
        extra = sorted(set(data) - {"pipeline", "input", "model", "set"})
        if extra:
            raise ValueError(f"a pipeline recipe takes pipeline, input, model and set, not {extra[0]!r}")
        if not isinstance(data.get("pipeline"), str) or not isinstance(data.get("input"), str):
            raise ValueError("a pipeline recipe needs pipeline (its file) and input (the table the loop's rows stand for, e.g. split.train)")
        overrides = data.get("set") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ValueError("set: a list of STEP.FIELD=VALUE strings")
        params = {"pipeline": str(Path(data["pipeline"]).resolve()), "input": data["input"], "model": data.get("model"), "set": overrides}
        return {"callable": PIPELINE_RECIPE, "params": params}

    def resolve(self) -> Callable[..., Any]:
        """The function itself; an import that fails or a name that is not callable is refused, naming the field; a
        pipeline recipe's file is read and its steps from the input to the model are checked."""
        from mloop.pipelines._steps import resolve_callable

        if self.callable == PIPELINE_RECIPE:
            from mloop.pipelines._recipe import plan

            plan(self.params["pipeline"], self.params["input"], self.params.get("model"), self.params.get("set"))
        return resolve_callable(self.callable, "recipe.callable")


PIPELINE_RECIPE = "mloop.pipelines._recipe:fit"


class RolloutPlan(_Strict):
    """How a challenger that passed the gate goes live: a ``canary`` judged by the rollout driver (its fields as in a
    canary policy document), or ``blue-green`` (all traffic at once)."""

    strategy: Literal["canary", "blue-green"] = "canary"
    steps: list[float] | None = None
    min_samples: int | None = None
    min_seconds: float | None = None
    metrics: dict[str, dict[str, Any]] | None = None

    def document(self, baseline: int, candidate: int) -> dict[str, Any]:
        """The traffic policy document for ``candidate`` beside ``baseline``."""
        if self.strategy == "blue-green":
            return {"policy": "blue-green", "active": str(candidate), "standby": str(baseline)}
        extra = {k: v for k, v in {"steps": self.steps, "min_samples": self.min_samples, "min_seconds": self.min_seconds,
                                   "metrics": self.metrics}.items() if v is not None}
        return {"policy": "canary", "baseline": str(baseline), "candidate": str(candidate), **extra}

    @model_validator(mode="after")
    def _canary(self) -> RolloutPlan:
        from mloop.rollout import parse_policy

        if self.strategy == "blue-green" and any(v is not None for v in (self.steps, self.min_samples, self.min_seconds, self.metrics)):
            raise ValueError("steps, min_samples, min_seconds and metrics apply to a canary only")
        if self.strategy == "canary":
            try:
                parse_policy(self.document(1, 2))
            except InvalidInput as exc:
                raise ValueError(exc.message.rstrip(".")) from None
        return self


def _blue_green() -> RolloutPlan:
    return RolloutPlan(strategy="blue-green")


def _not_worse() -> GateSpec:
    return GateSpec(min_effect=-0.05)


class OnlineSpec(_Strict):
    """The adaptive response, for a champion that learns online (``partial_fit``: ``mloop.training:online``,
    ``mloop.training:river``): once ``rows`` labels arrived since its last update, a copy of it learns the older
    ``1 - holdout`` of them; the ``gate`` judges that copy against the champion on the newest ``holdout`` (by default
    it must be shown at most 0.05 AUC worse: the gate is there to stop a bad batch — labels gone wrong upstream — not
    to demand proof of progress from each small step, which would hold adaptation back); if it passes, the copy
    learns the held-out rows too and goes live by ``rollout`` (blue-green by default). Each update is a registered
    version with its lineage."""

    rows: int = Field(default=5000, ge=100, le=10_000_000)
    holdout: float = Field(default=0.2, gt=0, le=0.5)
    gate: GateSpec = Field(default_factory=_not_worse)
    rollout: RolloutPlan = Field(default_factory=_blue_green)

    @model_validator(mode="after")
    def _enough(self) -> OnlineSpec:
        held = round(self.rows * self.holdout)
        if held < self.gate.min_rows:
            raise ValueError(f"rows × holdout holds out {held} rows, fewer than the gate's min_rows {self.gate.min_rows}: every update "
                             "would be refused; raise rows or holdout, or lower gate.min_rows")
        return self


FallbackOn = Literal["monitor", "performance", "estimated"]


def _alarms() -> list[FallbackOn]:
    return ["monitor", "performance", "estimated"]


class FallbackSpec(_Strict):
    """The immediate response: while an attempt that ``on`` triggers opened retrains, the deployment answers with a
    designated version (``version``, or what ``alias`` names when the trigger fires), the champion kept loaded as
    standby; traffic returns to the champion when the attempt ends, or passes to the challenger's rollout."""

    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, min_length=1, max_length=128)
    on: list[FallbackOn] = Field(default_factory=_alarms, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> FallbackSpec:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of version or alias (the version to serve while retraining)")
        return self


class Guards(_Strict):
    """At most one attempt in flight per deployment, always; none within ``cooldown_seconds`` of the last one began,
    and at most ``max_per_day`` in any 24 hours."""

    cooldown_seconds: float = Field(default=0.0, ge=0, le=365 * 86400)
    max_per_day: int = Field(default=4, ge=1, le=1000)


class LoopPolicy(_Strict):
    """One deployment's retraining policy."""

    deployment: str = Field(min_length=1, max_length=128)
    triggers: TriggerSpec = Field(default_factory=TriggerSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    recipe: RecipeSpec = Field(default_factory=RecipeSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    rollout: RolloutPlan = Field(default_factory=RolloutPlan)
    guards: Guards = Field(default_factory=Guards)
    fallback: FallbackSpec | None = None
    online: OnlineSpec | None = None

    @field_validator("deployment")
    @classmethod
    def _name(cls, name: str) -> str:
        from mloop.names import check_name

        try:
            check_name(name, "deployment")
        except InvalidInput as exc:
            raise ValueError(exc.message.rstrip(".")) from None
        return name


def parse_loop_policy(data: Any, *, where: str = "policy", check_recipe: bool = True) -> LoopPolicy:
    """A policy document validated; the first problem becomes ``InvalidInput`` naming ``where.field``; the recipe must
    import (``check_recipe``: when a policy is applied; a stored one was checked then, and its recipe's problems now
    are its attempt's, not every look's)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} must be a mapping with at least a deployment.", field=where)
    try:
        policy = LoopPolicy.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc, where) from None
    if not check_recipe:
        return policy
    try:
        policy.recipe.resolve()
    except InvalidInput as exc:
        field = exc.field if exc.field and exc.field.startswith("recipe.") else "recipe.callable"
        raise InvalidInput(f"{where}.{exc.message}", field=f"{where}.{field}") from None
    return policy


def load_loop_policies(path: Path) -> list[LoopPolicy]:
    """Every policy of a YAML (or JSON) file ``{policies: [...]}``; errors name the file, the entry and the field."""
    from mloop.files import read_yaml

    data = read_yaml(path, "policy")
    if not isinstance(data, dict) or not isinstance(data.get("policies"), list) or not data["policies"]:
        raise InvalidInput(f"{path} must hold a non-empty list under 'policies:'.", field="policies")
    unknown = sorted(set(data) - {"policies"})
    if unknown:
        raise InvalidInput(f"{path}: unknown top-level key {unknown[0]!r} (only 'policies').", field=unknown[0])
    policies = []
    for i, entry in enumerate(data["policies"]):
        recipe = entry.get("recipe") if isinstance(entry, dict) else None
        if isinstance(recipe, dict) and isinstance(recipe.get("pipeline"), str):  # a pipeline file beside the policy file
            entry = {**entry, "recipe": {**recipe, "pipeline": str(path.parent / recipe["pipeline"])}}
        try:
            policies.append(parse_loop_policy(entry, where=f"policies[{i}]"))
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc.message}", field=exc.field) from None
    names = [p.deployment for p in policies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"{path}: deployment {twice[0]!r} has more than one policy.", field="policies")
    return policies
