"""What the demo tells the server, and how it reads back what the server's loop did: the monitor and the retraining
policy it applies over HTTP, the wait for the controller at the end of each month, and the loop's own records (its
attempts, the guards' skips, the rollout driver's decisions) turned into the report's month-by-month actions. The
demo decides nothing: every decision below was taken by the controller or the rollout driver inside the server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from mloop.automation import Loop
from mloop.demo._flights import SPEC
from mloop.demo._records import DemoAction, DemoConfig
from mloop.errors import Unavailable
from mloop.workspace import Workspace

MODEL = DEPLOYMENT = EXPERIMENT = "flights"


def monitor_document(reference: Path, cfg: DemoConfig) -> dict[str, Any]:
    """Data drift of the inputs against January–February, a window per block of predictions; it alarms (to the
    dashboard, Prometheus and webhooks) when two of the last three windows drifted. The policy below does not
    retrain on it: on this replay, data-drift alarms fire nearly every month (``benchmarks/loop.py``)."""
    return {"name": "inputs", "deployment": DEPLOYMENT, "reference": {"path": str(reference)}, "features": list(SPEC.features),
            "window": {"kind": "count", "size": cfg.rows_per_block}, "persistence": {"k": 2, "n": 3}}


def slices_document(cfg: DemoConfig) -> dict[str, Any]:
    """Accuracy per origin airport and carrier (the demo's groups), with intervals, and fairness across them, over
    each block of labelled predictions."""
    return {"name": "slices", "deployment": DEPLOYMENT, "window": {"kind": "count", "size": cfg.rows_per_block},
            "performance": {"groups": ["origin", "carrier"], "sensitive": [], "threshold": 0.5}}


def slices_summary(ws: Workspace) -> str | None:
    """One line on what the slices monitor found: its windows, the last one's worst slices and its report."""
    row = next((m for m in ws.store.monitors.list() if m.deployment == DEPLOYMENT and m.name == "slices"), None)
    windows = ws.store.monitors.windows(row.id, last=1000) if row is not None else []
    if not windows:
        return None
    last = windows[-1]
    worst = ", ".join(f"{s['column']} {s['value']} ({s['accuracy']:.3f})" for s in last.summary.get("worst", [])[:4]) or "none"
    fair = last.summary.get("fairness", {}).get("carrier", {})
    return (f"slices: {len(windows)} labelled windows scored per origin and carrier; the last one's accuracy "
            f"{last.summary['overall']['accuracy']:.3f}, worst slices {worst}; carrier demographic-parity difference "
            f"{fair.get('demographic_parity_difference', float('nan')):.3f} — {last.report}")


def policy_document(cfg: DemoConfig, params: dict[str, Any], base: Path) -> dict[str, Any]:
    """The demo's retraining policy: retrain when the champion's own AUC falls (a block of labelled predictions
    against its first, one-sided DeLong z at 5 %), on January–February plus the newest 120,000 labelled rows
    (× sample) up to that evidence, with the recipe and the parameters that made v1; the challenger must beat the
    champion's AUC on the newest 15 % it did not see (paired DeLong, 5 %); then a canary makes sure it is safe to
    serve (no more failed requests), stage by stage.

    The canary does not judge the live Brier loss here: the gate's objective is ranking (AUC), and on this replay a
    challenger trained on the summer ranks the autumn better than v1 yet over-predicts delays as their rate falls,
    so a loss-judged canary vetoed the very challengers the gate had shown better (``docs/loop.md``)."""
    per_stage = 100  # requests on the candidate's side at each stage, at least
    return {
        "deployment": DEPLOYMENT,
        "triggers": {"monitors": [], "performance": {"rows": cfg.rows_per_block, "alpha": 0.05}},
        "data": {"rows": max(1000, round(120_000 * cfg.sample)), "holdout": 0.15, "min_rows": max(200, cfg.rows_per_block),
                 "base": str(base), "base_target": SPEC.target},
        "recipe": {"callable": "mloop.training:tabular",
                   "params": {**params, "seed": cfg.seed, "numeric": list(SPEC.numeric), "categorical": list(SPEC.categorical)}},
        "gate": {"metric": "auc", "min_effect": 0.0, "alpha": 0.05, "min_rows": 100},
        "rollout": {"strategy": "canary", "steps": [20, 50, 100], "min_samples": per_stage, "min_seconds": 0,
                    # Failed requests only: these models answer in under a millisecond, and a candidate 25 % slower at
                    # that (a bigger ensemble, fewer of its requests in each batch) is noise beside the request's own cost.
                    "metrics": {"errors": {"tolerance": 0.02, "min_samples": per_stage}}},
        # The replayed year passes in minutes: no cooldown in seconds would mean what a month means; one attempt in
        # flight at a time, and each block judged once, are the guards that matter here.
        "guards": {"cooldown_seconds": 0, "max_per_day": 100},
    }


def configure(client: httpx.Client, reference: Path, cfg: DemoConfig, params: dict[str, Any]) -> None:
    """Apply the monitor and the retraining policy through the server's API, as an operator would."""
    for path, body in (("/api/monitors", monitor_document(reference, cfg)), ("/api/monitors", slices_document(cfg)),
                       ("/api/loop/policies", policy_document(cfg, params, reference))):
        resp = client.put(path, json=body)
        if resp.status_code not in (200, 201):
            raise Unavailable(f"PUT {path} was refused ({resp.status_code}): {resp.text[:300]}")


def await_loop(client: httpx.Client, after: float, timeout: float = 600.0) -> dict[str, Any]:
    """Wait until a pass of the server's controller began after ``after`` (the log then held everything sent) and no
    attempt is between steps (training or gating): a month of the real world is long beside a retrain, and this keeps
    it so. A canary in progress goes on: it needs the next month's traffic."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/deployments/{DEPLOYMENT}/loop").json()
        beat, flight = status["controller"], status["in_flight"]
        if beat is not None and beat["started"] > after and (flight is None or flight["step"] == "wait"):
            return status
        if time.monotonic() > deadline:
            raise Unavailable(f"The loop controller did not finish a pass within {timeout:.0f} s ({status}); see server.log.")
        time.sleep(0.1)


def month_at(marks: list[tuple[float, int]], t: float) -> int:
    """The month being replayed at time ``t`` (``marks``: when each month began)."""
    month = marks[0][1]
    for started, m in marks:
        if started <= t:
            month = m
    return month


def read_back(ws: Workspace, marks: list[tuple[float, int]]) -> tuple[list[dict[str, Any]], list[DemoAction]]:
    """This replay's attempts (``mloop loop history --json``) and, in time order, what the loop did in each month."""
    began = marks[0][0]
    attempts = [a for a in Loop(ws.store, ws.bus).history(DEPLOYMENT, last=10_000) if a["trigger"]["at"] >= began]
    timed: list[tuple[float, DemoAction]] = []
    decisions = ws.store.rollouts.decisions(DEPLOYMENT, last=10_000)
    for a in attempts:
        timed += _attempt_actions(a, marks)
        rollout = next((s for s in a["steps"] if s["name"] == "rollout" and s["outcome"] == "ok"), None)
        if rollout is None:
            continue
        challenger = a["challenger"]
        for d in decisions:
            if d.policy_id == rollout["detail"]["policy_id"] and d.action in ("advance", "promote", "rollback"):
                timed.append((d.created_at, _canary_action(d.action, d.decision, d.actor, month_at(marks, d.created_at), challenger, a["id"])))
    for entry in ws.store.audit.list(action="loop.trigger_skipped", target=DEPLOYMENT, limit=100_000):
        if entry.created_at >= began:
            detail = entry.details or {}
            evidence = {k: float(v) for k, v in (detail.get("detail") or {}).items() if k in ("reference", "current", "z")}
            timed.append((entry.created_at, DemoAction(month_at(marks, entry.created_at), "skip", None,
                                                       f"{detail.get('trigger')} trigger held back: {detail.get('reason')}", evidence)))
    timed.sort(key=lambda pair: pair[0])
    return attempts, [action for _, action in timed]


def _attempt_actions(a: dict[str, Any], marks: list[tuple[float, int]]) -> list[tuple[float, DemoAction]]:
    trigger, out = a["trigger"], []
    t = trigger["detail"]
    if trigger["kind"] == "performance":
        why = (f"v{t['champion']}'s AUC fell to {t['current']:.3f} from {t['reference']:.3f} (block {t['block']}, z {t['z']:.2f}) → "
               f"attempt {a['id']}")
        evidence = {k: float(t[k]) for k in ("reference", "current", "z", "alpha", "rows")}
    else:
        why, evidence = f"{trigger['kind']} trigger → attempt {a['id']}", {}
    out.append((trigger["at"], DemoAction(month_at(marks, trigger["at"]), "trigger", a["champion"], why, evidence, a["id"])))
    for s in a["steps"]:
        when, d = s["finished_at"] or s["started_at"], s["detail"]
        month = month_at(marks, when)
        if s["outcome"] == "failed":
            out.append((when, DemoAction(month, "failed", None, f"attempt {a['id']} failed at {s['name']}: {d.get('reason')}", {}, a["id"])))
        elif s["name"] == "gate" and s["outcome"] in ("ok", "rejected_by_gate"):
            gated = {k: float(d[k]) for k in ("champion", "challenger", "difference", "lower", "z", "min_effect", "rows") if d.get(k) is not None}
            passed = s["outcome"] == "ok"
            version = d["refit"]["version"] if passed and d.get("refit") else (a["challenger"] if passed else None)
            verb = "passed the gate" if passed else "rejected by the gate"
            out.append((when, DemoAction(month, "pass" if passed else "reject", version,
                                         f"challenger {verb}: AUC {gated.get('challenger', float('nan')):.3f} vs champion "
                                         f"{gated.get('champion', float('nan')):.3f} on {gated.get('rows', 0):,.0f} held-out rows, lower bound "
                                         f"{gated.get('lower', float('nan')):+.4f}", gated, a["id"])))
        elif s["name"] == "rollout" and s["outcome"] == "ok":
            out.append((when, DemoAction(month, "canary", a["challenger"], f"canary: v{a['challenger']} beside v{a['champion']}", {}, a["id"])))
    return out


def _canary_action(action: str, decision: dict[str, Any], actor: str, month: int, version: int | None, attempt: int) -> DemoAction:
    """A rollout decision with the statistics it was taken on, each metric's flattened as ``metric.field``."""
    judged = decision.get("evidence", [])
    if not judged:  # a person ended it (pause, rollback by hand): no statistic
        return DemoAction(month, action, version, f"{action} by {actor}: {decision.get('reason', '')}", {}, attempt)
    evidence = {"share": float(decision["share"])}
    for e in judged:
        for key in ("candidate", "baseline", "n_candidate", "n_baseline", "log_ratio", "threshold", "upper", "tolerance"):
            value = e.get(key)
            evidence[f"{e['metric']}.{key}"] = float(value) if value is not None else float("nan")
    said = "; ".join(_said(e) for e in judged)
    why = {
        "advance": f"canary stage {decision['share']:g}% passed ({said})",
        "promote": f"v{version} promoted to champion ({said})",
        "rollback": f"canary rolled back v{version}: {decision.get('reason', '')} ({said})",
    }[action]
    return DemoAction(month, action, version, why, evidence, attempt)


def _said(e: dict[str, Any]) -> str:
    """One metric's evidence in words: both arms and their outcomes, the test's log-likelihood ratio against its
    threshold, and how much worse the candidate may be."""
    parts = [f"{e['metric']} {e['candidate']:.4g} vs {e['baseline']:.4g} on {e['n_candidate']:,} / {e['n_baseline']:,} requests"]
    if e.get("log_ratio") is not None:
        parts.append(f"log Λ {e['log_ratio']:.2f} {'≥' if e['log_ratio'] >= e['threshold'] else '<'} {e['threshold']:.2f}")
    if e.get("upper") is not None:
        parts.append(f"worse by at most {e['upper']:+.4f} (tolerance {e['tolerance']:g})")
    return ", ".join(parts)
