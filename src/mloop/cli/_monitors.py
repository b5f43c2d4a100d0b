"""``mloop monitors apply|list|remove|windows|run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mloop.cli._common import DRY_RUN_HELP, JSON_HELP, app, console, open_workspace, print_json, print_plan, run_operation

monitors_app = typer.Typer(help="Monitors: drift windows, persistence and alarms per deployment.", no_args_is_help=True)
app.add_typer(monitors_app, name="monitors")


@monitors_app.command("apply")
def monitors_apply(
    file: Annotated[Path, typer.Argument(help="YAML file with a list under 'monitors:'.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
) -> None:
    """Create or update every monitor of FILE (all are checked before any is written)."""
    from mloop.monitoring import load_monitors

    ws = open_workspace()
    configs = [c.model_dump(mode="json") for c in load_monitors(file)]
    plans = [run_operation("monitors.apply", {"config": c}, dry_run=True, workspace=ws) for c in configs]
    if dry_run:
        for plan in plans:
            print_plan(plan)
        return
    for config in configs:
        row = run_operation("monitors.apply", {"config": config}, workspace=ws)
        window, freshness = row.config.get("window"), row.config.get("freshness")
        what = f"{window['kind']} windows" if window is not None else f"feature freshness ≤ {freshness['max_age']:g} s"
        console.print(f"monitor [bold]{row.deployment}/{row.name}[/bold]: {what}")


@monitors_app.command("list")
def monitors_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Monitors, their windows, the latest verdict and any error."""
    result = run_operation("monitors.list")
    if as_json:
        print_json(result)
        return
    table = Table(title="monitors")
    for col in ("deployment", "name", "window", "windows", "last", "alarm", "error"):
        table.add_column(col)
    for m in result.monitors:
        table.add_row(m.deployment, m.name, m.kind, str(m.windows), m.last, "yes" if m.alarm else "no", m.error)
    console.print(table)


@monitors_app.command("remove")
def monitors_remove(deployment: str, name: str, dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False) -> None:
    """Delete a monitor and its window history."""
    result = run_operation("monitors.remove", {"deployment": deployment, "name": name}, dry_run=dry_run)
    if dry_run:
        print_plan(result)
        return
    console.print(f"removed monitor {deployment}/{name}")


@monitors_app.command("windows")
def monitors_windows(
    deployment: str, name: str, last: Annotated[int, typer.Option(min=1, max=1000, help="How many of the latest windows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP + " Each window carries its per-feature statistics.")] = False,
) -> None:
    """The latest windows of a monitor: rows, verdict, alarm and report."""
    import datetime as dt

    result = run_operation("monitors.windows", {"deployment": deployment, "name": name, "last": last, "features": as_json})
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{deployment}/{name}")
    for col in ("id", "end (UTC)", "rows", "drift", "alarm", "drifted", "report"):
        table.add_column(col)
    for w in result.windows:
        table.add_row(str(w.id), dt.datetime.fromtimestamp(w.end, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), str(w.rows),
                      "yes" if w.drift else "no", "yes" if w.alarm else "no", ", ".join(w.drifted), w.report or "")
    console.print(table)


@monitors_app.command("run")
def monitors_run() -> None:
    """Evaluate every closed window now (what a server's scheduler does each tick), if no server holds the lease."""
    from mloop.monitoring import MonitorScheduler
    from mloop.serving import monitor_runner, online_features

    ws = open_workspace()
    features = online_features(ws)
    scheduler = MonitorScheduler(monitor_runner(ws, features), interval=max(ws.settings.monitor_interval, 1.0))
    try:
        results = scheduler.run_once()
    finally:
        scheduler.stop()
        features.close()
    if results is None:
        console.print("a server holds the monitor lease and evaluates the monitors; nothing done here")
        return
    for r in results:
        console.print(f"{r.deployment}/{r.monitor}: {r.rows} rows, {'drift' if r.drift else 'stable'}{', ALARM' if r.alarm else ''}"
                      + (f" ({', '.join(r.drifted)})" if r.drifted else ""))
    console.print(f"{len(results)} window(s) evaluated")
