"""Monitors: their configuration and latest verdict, applying and removing one, and a monitor's drift timeline
(each window's rows, verdict, alarm, drifted features and report)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mloop.operations._core import Context, DeploymentName, Http, Input, MonitorName, Operation, Output, operation
from mloop.operations.keys import Nothing


class MonitorRow(Output):
    deployment: str
    name: str
    config: dict[str, Any]
    kind: str = Field(description="What it watches: a window kind and size, or feature freshness.")
    windows: int
    last: str = Field(description="stable, drift, fresh, stale: …, or — before its first window.")
    alarm: bool
    error: str


class Monitors(Output):
    monitors: list[MonitorRow]


def _row(ctx: Context, m: Any) -> MonitorRow:
    monitors = ctx.workspace.store.monitors
    windows = monitors.windows(m.id, last=1)
    window, state = m.config.get("window"), monitors.state(m.id)
    last = windows[-1] if windows else None
    if window is None:  # a freshness monitor: its state holds the last check
        kind = f"freshness ≤ {m.config['freshness']['max_age']:g} s"
        verdict = "stale: " + ", ".join(state["stale"]) if state.get("stale") else "fresh" if "checked" in state else "—"
    else:
        kind = f"{window['kind']} {window.get('size') or ''}".strip()
        verdict = ("drift" if last.drift else "stable") if last else "—"
    return MonitorRow(deployment=m.deployment, name=m.name, config=m.config, kind=kind, windows=monitors.count_windows(m.id), last=verdict,
                      alarm=bool(last and last.alarm), error=str(state.get("error", "")))


LIST = operation(Operation(
    "monitors.list", "Monitors: configuration, windows evaluated, the latest verdict and alarm, and any error.", "viewer", Nothing, Monitors,
    lambda ctx, _: Monitors(monitors=[_row(ctx, m) for m in ctx.workspace.store.monitors.list()]),
    http=Http("GET", "/api/monitors"), tags=("monitors",),
))


class ApplyMonitor(Input):
    config: dict[str, Any] = Field(description="One monitor: the YAML entry's fields (deployment, name, window, features, test, alarm…).")


class Applied(Output):
    deployment: str
    name: str
    config: dict[str, Any]


def _apply(ctx: Context, body: ApplyMonitor) -> Applied:
    from mloop.monitoring import register_monitor

    row = register_monitor(ctx.workspace.store, body.config, actor=ctx.actor)
    return Applied(deployment=row.deployment, name=row.name, config=row.config)


def _plan_apply(ctx: Context, body: ApplyMonitor) -> dict[str, Any]:
    from mloop.monitoring import parse_monitor
    from mloop.monitoring._monitor_config import reference_file

    parsed = parse_monitor(body.config)
    ctx.workspace.store.deployments.get(parsed.deployment)
    reference_file(parsed)
    exists = any(m.deployment == parsed.deployment and m.name == parsed.name for m in ctx.workspace.store.monitors.list())
    return {"replace_monitor" if exists else "create_monitor": parsed.model_dump(mode="json")}


APPLY = operation(Operation(
    "monitors.apply", "Create or replace a monitor (the YAML entry's fields, as JSON); a changed configuration restarts its windows.",
    "operator", ApplyMonitor, Applied, _apply, plan=_plan_apply, http=Http("PUT", "/api/monitors", body_field="config"), destructive=True,
    tags=("monitors",),
))


class MonitorRef(Input):
    deployment: DeploymentName = Field(description="The deployment it watches.")
    name: MonitorName = Field(description="The monitor.")


class Removed(Output):
    removed: str


def _plan_remove(ctx: Context, body: MonitorRef) -> dict[str, Any]:
    monitor = ctx.workspace.store.monitors.get(body.deployment, body.name)
    return {"remove_monitor": f"{body.deployment}/{body.name}", "windows_deleted": ctx.workspace.store.monitors.count_windows(monitor.id)}


def _remove(ctx: Context, body: MonitorRef) -> Removed:
    ctx.workspace.store.monitors.remove(body.deployment, body.name, actor=ctx.actor)
    return Removed(removed=f"{body.deployment}/{body.name}")


REMOVE = operation(Operation(
    "monitors.remove", "Delete a monitor and its window history.", "admin", MonitorRef, Removed, _remove, plan=_plan_remove,
    http=Http("DELETE", "/api/monitors/{deployment}/{name}"), destructive=True, tags=("monitors",),
))


class WindowsQuery(MonitorRef):
    last: int = Field(default=20, ge=1, le=1000, description="How many of the latest windows.")
    features: bool = Field(default=False, description="Include each window's per-feature statistics (larger).")


class WindowRow(Output):
    id: int
    start: float
    end: float
    rows: int
    drift: bool
    alarm: bool
    drifted: list[str]
    report: str | None
    summary: dict[str, Any] | None = None


class Windows(Output):
    deployment: str
    name: str
    total: int
    windows: list[WindowRow] = Field(description="Oldest first.")


def _windows(ctx: Context, q: WindowsQuery) -> Windows:
    monitors = ctx.workspace.store.monitors
    monitor = monitors.get(q.deployment, q.name)
    rows = monitors.windows(monitor.id, last=q.last)
    return Windows(deployment=q.deployment, name=q.name, total=monitors.count_windows(monitor.id), windows=[
        WindowRow(id=w.id, start=w.start, end=w.end, rows=w.rows, drift=w.drift, alarm=w.alarm,
                  drifted=[f["name"] for f in w.summary.get("features", []) if f.get("drift")], report=w.report,
                  summary=w.summary if q.features else None)
        for w in rows
    ])


WINDOWS = operation(Operation(
    "monitors.windows", "A monitor's drift timeline: the latest windows with rows, verdict, alarm, drifted features and report.", "viewer",
    WindowsQuery, Windows, _windows, http=Http("GET", "/api/monitors/{deployment}/{name}/windows"), tags=("monitors",),
))
