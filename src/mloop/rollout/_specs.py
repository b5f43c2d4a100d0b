"""Traffic policies as validated data, and the one Protocol every policy's logic implements.

A policy document names its kind (``policy: canary``) and the model versions it routes between; it is checked when
it is set, so a share of 250 or an unknown field is refused then, naming the field, and never fails a request later.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import Field, ValidationError, model_validator

from mloop.errors import InvalidInput, invalid_from
from mloop.rollout._bandit import BanditPolicy, BanditSpec
from mloop.rollout._canary_policy import Action, CanaryPolicy, CanarySpec, PolicyDecision, _Strict


class BlueGreenSpec(_Strict):
    """All traffic on ``active``; ``standby`` stays loaded so that a switch (or a rollback) is instant."""

    active: str = Field(min_length=1)
    standby: str = Field(min_length=1)

    @model_validator(mode="after")
    def _two(self) -> BlueGreenSpec:
        if self.active == self.standby:
            raise ValueError(f"active and standby must be two versions (both {self.active!r})")
        return self


class ShadowSpec(_Strict):
    """All traffic answered by ``primary``; a copy of each request (a ``sample`` of them) also goes to ``shadow``, off
    the response path, through a queue of at most ``queue_size`` copies (copies that find it full are dropped and
    counted, never waited for)."""

    primary: str = Field(min_length=1)
    shadow: str = Field(min_length=1)
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    sample: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _two(self) -> ShadowSpec:
        if self.primary == self.shadow:
            raise ValueError(f"primary and shadow must be two versions (both {self.primary!r})")
        return self


class TrafficPolicy(Protocol):
    """What the server, the driver and the simulator ask of a policy: pure logic, no I/O."""

    name: str

    def weights(self) -> dict[str, float]: ...

    def route(self, key: str) -> tuple[str, float]: ...

    def observe(self, arm: str, metric: str, value: float, count: int = 1) -> None: ...

    def decide(self, now: float) -> PolicyDecision: ...

    def apply(self, decision: PolicyDecision, now: float) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


class _ByCommand:
    """A policy whose traffic follows fixed weights and whose changes are an operator's commands: it observes
    nothing and decides nothing."""

    name = "by-command"
    fixed: dict[str, float] = {}
    why = ""

    def __init__(self, spec: Any, *, started: float = 0.0) -> None:
        self.spec = spec

    def weights(self) -> dict[str, float]:
        return dict(self.fixed)

    def route(self, key: str) -> tuple[str, float]:
        arm = max(self.fixed, key=self.fixed.__getitem__)
        return arm, self.fixed[arm]

    def observe(self, arm: str, metric: str, value: float, count: int = 1) -> None:
        return None

    def decide(self, now: float) -> PolicyDecision:
        return PolicyDecision(Action.WAIT, 0, 0.0, self.why)

    def apply(self, decision: PolicyDecision, now: float) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None


class BlueGreenPolicy(_ByCommand):
    """Routes everything to the active version; switching is an operator's decision, not the evidence's."""

    name = "blue-green"
    fixed = {"active": 1.0, "standby": 0.0}
    why = "blue-green switches on command"


class ShadowPolicy(_ByCommand):
    """Routes everything to the primary; the shadow's answers are compared by the server, never served or decided on."""

    name = "shadow"
    fixed = {"primary": 1.0, "shadow": 0.0}
    why = "a shadow compares; an operator decides what to do with the comparison"


#: kind → (its validated document, its logic)
POLICIES: dict[str, tuple[type[_Strict], type[Any]]] = {
    "canary": (CanarySpec, CanaryPolicy),
    "blue-green": (BlueGreenSpec, BlueGreenPolicy),
    "bandit": (BanditSpec, BanditPolicy),
    "shadow": (ShadowSpec, ShadowPolicy),
}

Spec = CanarySpec | BlueGreenSpec | BanditSpec | ShadowSpec


def parse_policy(data: Any, *, where: str = "") -> Spec:
    """A policy document (``{"policy": KIND, ...}``) validated; the first problem becomes ``InvalidInput`` naming
    the field (``steps.2``, ``metrics.errors.tau``)."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where or 'policy'} must be an object with a 'policy' field.", field=where or "policy")
    kind = data.get("policy")
    if not isinstance(kind, str) or kind not in POLICIES:
        raise InvalidInput(f"{prefix}policy must be one of {', '.join(POLICIES)}, got {kind!r}.", field=f"{prefix}policy")
    model = POLICIES[kind][0]
    try:
        return model.model_validate({k: v for k, v in data.items() if k != "policy"})  # type: ignore[return-value]
    except ValidationError as exc:
        raise invalid_from(exc, where, default="policy") from None


class TrafficSplit(_Strict):
    """What a deployment row holds while a candidate serves beside the baseline: its alias and its share. Checked
    when it is set, so a share of 250 is refused at deploy instead of failing every request afterwards."""

    candidate_alias: str = Field(min_length=1, max_length=128)
    percent: float = Field(ge=0, le=100, allow_inf_nan=False)
    strategy: Literal["canary", "blue-green", "manual"] = "manual"


def parse_split(data: Any) -> dict[str, Any]:
    """A deployment's ``rollout`` field validated, as the plain dict that is stored; errors name ``rollout.<field>``."""
    if not isinstance(data, dict):
        raise InvalidInput(f"rollout must be an object with candidate_alias and percent, got {type(data).__name__}.", field="rollout")
    try:
        return TrafficSplit.model_validate(data).model_dump()
    except ValidationError as exc:
        raise invalid_from(exc, "rollout") from None


def build_policy(spec: Spec, *, started: float = 0.0, state: dict[str, Any] | None = None) -> TrafficPolicy:
    """The logic for a validated document, carrying on from ``state`` when given (a stored policy after a restart)."""
    for model, logic in POLICIES.values():
        if isinstance(spec, model):
            policy: TrafficPolicy = logic(spec, started=started)
            if state:
                policy.restore(state)
            return policy
    raise InvalidInput(f"No policy logic for {type(spec).__name__}.", field="policy")
