"""The closed loop: ``mloop loop apply|status|history|remove``, ``mloop retrain NAME`` and ``mloop controller`` (the
background decisions, run alone in the foreground)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mloop.cli._common import DRY_RUN_HELP, JSON_HELP, app, console, open_workspace, print_json, print_plan, run_operation

loop_app = typer.Typer(help="The closed loop: retraining policies and what they did.", no_args_is_help=True)
app.add_typer(loop_app, name="loop")


def open_loop() -> Any:
    from mloop.automation import Loop

    ws = open_workspace()
    return Loop(ws.store, ws.bus)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—"


@loop_app.command("apply")
def loop_apply(
    file: Annotated[Path, typer.Argument(help="A YAML file with `policies:`, one per deployment.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
) -> None:
    """Validate every retraining policy of FILE and make each its deployment's (the server's controller acts on them);
    every entry is checked before any is applied."""
    from mloop.automation import load_loop_policies

    policies = load_loop_policies(file)  # each entry parsed, errors naming policies[i]
    open_loop().check(policies)  # every entry's deployment, before any is applied
    plans = [run_operation("loop.apply", {"policy": policy.model_dump(mode="json")}, dry_run=True) for policy in policies]
    if dry_run:
        for plan in plans:
            print_plan(plan)
        return
    for policy in policies:
        row = run_operation("loop.apply", {"policy": policy.model_dump(mode="json")})
        console.print(f"{row.deployment}: retraining policy revision {row.revision} applied")


@loop_app.command("remove")
def loop_remove(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
) -> None:
    """Stop retraining a deployment automatically (its history stays)."""
    result = run_operation("loop.remove", {"name": name}, dry_run=dry_run)
    if dry_run:
        print_plan(result)
        return
    console.print(f"{name}: retraining policy revision {result.removed_revision} removed")


@loop_app.command("status")
def loop_status(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The deployment's retraining policy, the attempt in flight and the last attempts."""
    result = run_operation("loop.status", {"name": name})
    if as_json:
        print_json(result)
        return
    status = result.model_dump()
    policy = status["policy"]
    console.print(f"{name}: " + ("no retraining policy" if policy is None else f"retraining policy revision {policy['revision']} "
                                 f"(by {policy['actor']}, {_when(policy['created_at'])})"))
    beat = status["controller"]
    console.print("controller: " + ("no pass yet (is `mloop serve` or `mloop controller` running?)" if beat is None
                                    else f"last pass {_when(beat['finished'])}"))
    flight = status["in_flight"]
    if flight is not None:
        console.print(f"in flight: attempt {flight['id']} ({flight['trigger']['kind']}), at step {flight['step']}")
    if status["recent"]:
        table = Table(title=f"{name}: recent attempts")
        for col in ("id", "trigger", "began", "step", "result"):
            table.add_column(col)
        for a in status["recent"]:
            table.add_row(str(a["id"]), a["trigger"], _when(a["created_at"]), a["step"], a["result"] or "in flight")
        console.print(table)


@loop_app.command("history")
def loop_history(
    name: Annotated[str | None, typer.Argument(help="Only this deployment.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    last: Annotated[int, typer.Option(help="The newest N attempts.", min=1, max=1000)] = 50,
) -> None:
    """Every attempt: its trigger and evidence, each step with its outcome and statistic, and its result."""
    result = run_operation("loop.history", {"deployment": name, "last": last})
    if as_json:
        print_json(result)
        return
    attempts = result.attempts
    if not attempts:
        console.print("no attempts yet" + (f" for {name}" if name else ""))
        return
    for a in attempts:
        who = "a person took part" if a["human"] else "no person needed"
        console.print(f"[bold]attempt {a['id']}[/bold] {a['deployment']}: {a['trigger']['kind']} trigger at {_when(a['trigger']['at'])} → "
                      f"{a['result'] or 'in flight (' + a['step'] + ')'} ({who})")
        for s in a["steps"]:
            console.print(f"  {s['name']:<12} {s['outcome'] or 'running':<16} {_summary(s)}", highlight=False)


def _summary(step: dict[str, Any]) -> str:
    d = step["detail"]
    if step["name"] == "train" and "version" in d:
        learnt = f"= version {d['updated_from']} updated with" if "updated_from" in d else "from"
        return f"version {d['version']} {learnt} {d['train_rows']:,} rows ({d['holdout_rows']:,} held out), run {d['run_id']}"
    if step["name"] in ("gate", "rollout_end") or "reason" in d:
        return str(d.get("reason", ""))
    if step["name"] == "rollout":
        return f"{d.get('policy', '')} r{d.get('revision', '')}" + (f", promoted version {d['promoted']}" if "promoted" in d else "")
    return ""


@app.command()
def retrain(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
) -> None:
    """Open a retraining attempt now under the deployment's policy (the controller trains, gates and rolls it out)."""
    result = run_operation("loop.retrain", {"name": name, "reason": reason}, dry_run=dry_run)
    if dry_run:
        print_plan(result)
        return
    console.print(f"{name}: attempt {result.attempt} opened; `mloop loop status {name}` follows it")


@app.command()
def controller(
    once: Annotated[bool, typer.Option("--once", help="One pass of each, then exit (if no server holds their leases).")] = False,
) -> None:
    """Run the background decisions alone, in the foreground: the monitors, the rollout driver and the loop controller,
    each under its lease (so it stands down while a server runs them). Ctrl-C or SIGTERM stops it."""
    import signal
    import threading

    from mloop.automation import BACKGROUND
    from mloop.monitoring import MonitorScheduler

    ws = open_workspace()
    settings = ws.settings
    loops: list[Any] = []
    if settings.monitor_interval > 0:
        from mloop.serving import monitor_runner, online_features

        loops.append(MonitorScheduler(monitor_runner(ws, online_features(ws)), interval=settings.monitor_interval))
    loops += [loop for make in BACKGROUND if (loop := make(ws, None)) is not None]
    if once:
        for loop in loops:
            done = loop.run_once()
            console.print(f"{loop.lease}: " + ("another process holds the lease; nothing done" if done is None else "one pass done"))
            loop.stop()
        return
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for loop in loops:
            loop.start()
        console.print(f"controller: running {', '.join(loop.lease for loop in loops) or 'nothing (every interval is 0)'}; Ctrl-C stops it")
        stop.wait()
    finally:
        for loop in loops:
            loop.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
