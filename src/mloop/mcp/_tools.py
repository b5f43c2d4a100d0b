"""The MCP server's tools: a curated dozen of the operations, each with a precise description, the operation's typed
input schema (with smaller page sizes: a result must stay a few thousand tokens), annotations that say whether it
only reads or may destroy, and a ``dry_run`` on every change. Agents choose worse past about 30 tools; mloop offers 15."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mloop.errors import InvalidInput
from mloop.operations import Operation, get


@dataclass(frozen=True)
class Tool:
    """One tool: the operation it runs, what the agent reads about it, and the caps on its page sizes (``{field:
    (default, maximum)}``) and defaults that keep results small."""

    name: str
    operation: str
    description: str
    caps: dict[str, tuple[int, int]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: ``{flag: (field, maximum)}``: when ``flag`` is true, ``field`` is capped lower (details make each row larger)
    tighter: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: ``{list field: most items}`` through MCP
    items: dict[str, int] = field(default_factory=dict)

    @property
    def op(self) -> Operation[Any, Any]:
        return get(self.operation)

    def input_schema(self) -> dict[str, Any]:
        """The operation's JSON Schema with this tool's caps and defaults, plus ``dry_run`` for a change."""
        schema = copy.deepcopy(self.op.input.model_json_schema())
        schema.pop("title", None)
        props = schema.setdefault("properties", {})
        for name, (default, maximum) in self.caps.items():
            props[name] = {**props[name], "default": default, "maximum": maximum}
        for name, value in self.defaults.items():
            props[name] = {**props[name], "default": value}
        for name, most in self.items.items():
            props[name] = {**props[name], "maxItems": most}
        for prop in props.values():
            prop.pop("title", None)
        if self.op.mutates:
            props["dry_run"] = {"type": "boolean", "default": False,
                                "description": "Check everything and answer what would change, changing nothing. Use it first."}
        return schema

    def arguments(self, given: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        """The operation's input from the agent's arguments (caps enforced on the values as the operation reads them,
        so "500" or 500.0 is 500; defaults filled) and whether it is a dry run."""
        data = dict(given or {})
        dry_run = data.pop("dry_run", False)
        if not isinstance(dry_run, bool):
            raise InvalidInput("dry_run: true or false.", field="dry_run")
        if dry_run and not self.op.mutates:
            raise InvalidInput(f"dry_run: {self.name} only reads; call it without dry_run.", field="dry_run")
        for name, (default, _) in self.caps.items():
            data.setdefault(name, default)
        for name, value in self.defaults.items():
            data.setdefault(name, value)
        try:
            parsed = self.op.parse(data)
        except InvalidInput:
            return data, dry_run  # invoke refuses it, naming the field, once the caller's role is checked
        for name, (_, maximum) in self.caps.items():
            flag = next((f for f, (capped, _) in self.tighter.items() if capped == name and getattr(parsed, f, None) is True), None)
            most = min(maximum, self.tighter[flag][1]) if flag else maximum
            value = getattr(parsed, name)
            if name not in (given or {}) and flag:  # the default of a tighter page is the tighter maximum
                data[name] = value = min(value, most)
            if value > most:
                why = f" with {flag}" if flag else ""
                raise InvalidInput(f"{name}: at most {most} through MCP{why} (page with offset for more), got {value}.", field=name)
        for name, most in self.items.items():
            if len(getattr(parsed, name) or ()) > most:
                raise InvalidInput(f"{name}: at most {most} through MCP, got {len(getattr(parsed, name))}.", field=name)
        return data, dry_run


TOOLS: tuple[Tool, ...] = (
    Tool("whoami", "whoami", "Who this connection acts as: subject, role (viewer < predictor < operator < admin) and how it authenticated. "
         "Call it to know which tools will be refused."),
    Tool("list_models", "models.list", "Registered models: version count, newest version, and where each alias (champion, challenger…) points."),
    Tool("show_model", "models.show", "One registered model: every version with its aliases and training run, and one version's lineage "
         "(code version, seed, dataset fingerprints, feature views). Set card=true for the model card (Markdown, a few thousand characters).",
         defaults={"card": False}),
    Tool("list_runs", "runs.list", "Tracked training runs, newest first, one page at a time (total tells how many exist; next page: "
         "offset + limit): id, name, experiment, status, start time, latest metrics.", caps={"limit": (20, 50)}),
    Tool("list_deployments", "deployments.list", "Deployments: the model and alias each serves, the version that is now, and any live rollout "
         "with its traffic split. Start here to see what is in production."),
    Tool("rollout_status", "rollouts.status", "A deployment's rollout: the live traffic policy and weights, the policy history, and the latest "
         "decisions, each with the sequential statistic and boundary that took it.", caps={"last": (10, 50)}),
    Tool("deploy", "deploy", "Serve a registered model version on a deployment at once (no strategy), or roll it out beside the version "
         "served now with a strategy: canary (stages of share, judged by sequential tests), blue-green, bandit or shadow. Needs operator."),
    Tool("change_rollout", "rollouts.change", "Act on a deployment's live rollout: promote (its new version becomes the deployment's), rollback "
         "(back to the version served before the last switch or promotion), pause or resume. Needs operator."),
    Tool("list_monitors", "monitors.list", "Drift monitors: what each watches, windows evaluated, the latest verdict (stable, drift, stale) and "
         "whether it alarmed."),
    Tool("drift_windows", "monitors.windows", "A monitor's drift timeline, oldest first: each window's rows, verdict, alarm, drifted features "
         "and report path. features=true adds each window's per-feature statistics and attribution (then last is at most 2).",
         caps={"last": (10, 50)}, tighter={"features": ("last", 2)}),
    Tool("apply_monitor", "monitors.apply", "Create or replace a drift monitor from its configuration (deployment, name, window, features, "
         "test, alarm); a changed configuration restarts its windows. Needs operator."),
    Tool("loop_history", "loop.history", "The closed loop's latest retraining attempts (optionally of one deployment): the trigger and its "
         "evidence, each step (train, gate, rollout) with the statistic that decided it, and the result.", caps={"last": (5, 20)}),
    Tool("retrain", "loop.retrain", "Open a retraining attempt now under the deployment's retraining policy; the controller trains, gates "
         "against the champion and rolls it out. Needs operator."),
    Tool("predict", "predict", "Score up to 20 rows (objects keyed by input column) with what a deployment serves, or another version of "
         "its model; explain=true adds each row's attribution to its input columns. Nothing is logged. Needs predictor.",
         items={"rows": 20}),
    Tool("list_features", "features.list", "Feature views with entities, features, TTL and freshness (seconds since the newest materialised "
         "event), and the feature services that read them."),
)
BY_NAME = {t.name: t for t in TOOLS}
