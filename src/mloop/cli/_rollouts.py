"""Rolling out: ``mloop rollout status|set|promote|rollback|pause|resume|simulate`` (``mloop deploy`` is in ``_deployments``)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mloop.cli._common import DRY_RUN_HELP, JSON_HELP, app, console, parse_steps, print_json, print_plan, run_operation
from mloop.errors import InvalidInput

rollout_app = typer.Typer(help="Rollouts: traffic policies and the statistics that judge them.", no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")


@rollout_app.command("status")
def rollout_status(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    last: Annotated[int, typer.Option(help="How many of the latest decisions and policy revisions.", min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The deployment's traffic policy: its arms and shares, its history, and the decisions taken with their statistics."""
    result = run_operation("rollouts.status", {"name": name, "last": last})
    if as_json:
        print_json(result)
        return
    live = result.live
    if live is None:
        console.print(f"{name}: serves version {result.serves}; no rollout in progress")
    else:
        shares = ", ".join(f"{arm} {w:.0%}" for arm, w in live["weights"].items())
        console.print(f"{name}: {live['kind']} (revision {live['revision']}, {live['status']}) over version {result.serves}: {shares}")
    shown = f"the latest {len(result.history)} of {result.revisions}" if result.revisions > len(result.history) else "all"
    table = Table(title=f"{name}: policies ({shown})")
    for col in ("revision", "kind", "status", "by", "why"):
        table.add_column(col)
    for p in result.history:
        table.add_row(str(p["revision"]), p["kind"], p["status"], p["actor"], p["reason"])
    console.print(table)
    if result.decisions:
        table = Table(title=f"{name}: last decisions")
        for col in ("action", "by", "why"):
            table.add_column(col)
        for d in result.decisions:
            table.add_row(d["action"], d["actor"], str(d["decision"].get("reason", "")))
        console.print(table)


@rollout_app.command("set")
def rollout_set(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    file: Annotated[Path, typer.Argument(help="A policy document, YAML or JSON: `policy: canary`, its versions, steps, metrics…")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
) -> None:
    """Make a policy document the deployment's live traffic policy (validated first; the server's driver takes it from there)."""
    from mloop.files import read_yaml

    document = read_yaml(file, "policy")
    if not isinstance(document, dict):
        raise InvalidInput(f"{file}: the policy document must be an object (`policy:` and that kind's fields).", field="document")
    try:
        result = run_operation("rollouts.set", {"name": name, "document": document, "reason": reason or f"set from {file.name}"}, dry_run=dry_run)
    except InvalidInput as exc:
        raise InvalidInput(f"{file}: {exc.message}", field=exc.field) from None
    if dry_run:
        print_plan(result)
        return
    console.print(f"{name}: {result.kind} policy set (revision {result.revision}); `mloop rollout status {name}` follows it")


def _change(name: str, action: str, dry_run: bool) -> None:
    result = run_operation("rollouts.change", {"name": name, "action": action}, dry_run=dry_run)
    if dry_run:
        print_plan(result)
    elif action in ("promote", "rollback"):
        console.print(f"{name}: {'promoted' if action == 'promote' else 'rolled back'}; serves version {result.serves}")
    else:
        console.print(f"{name}: rollout {action}d")


_NAME = Annotated[str, typer.Argument(help="The deployment.")]
_DRY = Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)]


@rollout_app.command("promote")
def rollout_promote(name: _NAME, dry_run: _DRY = False) -> None:
    """End the rollout by making its new version the one the deployment serves."""
    _change(name, "promote", dry_run)


@rollout_app.command("rollback")
def rollout_rollback(name: _NAME, dry_run: _DRY = False) -> None:
    """Return to the version served before the last switch or promotion, and print it."""
    _change(name, "rollback", dry_run)


@rollout_app.command("pause")
def rollout_pause(name: _NAME, dry_run: _DRY = False) -> None:
    """Hold the rollout where it is: shares stay, no automatic decision is taken."""
    _change(name, "pause", dry_run)


@rollout_app.command("resume")
def rollout_resume(name: _NAME, dry_run: _DRY = False) -> None:
    """Let a paused rollout go on."""
    _change(name, "resume", dry_run)


@rollout_app.command("simulate")
def rollout_simulate(
    policy: Annotated[str, typer.Option(help="The policy to plan (canary).")] = "canary",
    baseline_error: Annotated[float, typer.Option(help="The baseline's error rate (0–1).")] = 0.05,
    candidate_error: Annotated[float, typer.Option(help="The candidate's error rate (0–1).")] = 0.05,
    runs: Annotated[int, typer.Option(help="Simulated rollouts.")] = 1000,
    requests: Annotated[int, typer.Option(help="Requests per rollout at most.")] = 50_000,
    steps: Annotated[str, typer.Option(help="The candidate's shares, in percent, ending at 100.")] = "1,5,25,50,100",
    min_samples: Annotated[int, typer.Option(help="Candidate outcomes per stage before it may pass.")] = 100,
    alpha: Annotated[float, typer.Option(help="Error rate of the judge's decisions (0–0.5).")] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed (the same seed gives the same figures).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
) -> None:
    """Plan a rollout with the code the server runs: how often it rolls back or promotes, and after how many requests,
    beside a naive judge that repeats a fixed-sample test at every look."""
    import json

    from mloop.rollout import simulate_canary

    if policy != "canary":
        raise InvalidInput(f"--policy: simulate plans canary rollouts, got {policy!r}.", field="--policy")
    shares = parse_steps(steps)
    with console.status(f"simulating {runs:,} canary rollouts …", spinner="dots") if not as_json else contextlib.nullcontext():
        result = simulate_canary(baseline_error=baseline_error, candidate_error=candidate_error, runs=runs, requests=requests,
                                 seed=seed, steps=shares, min_samples=min_samples, alpha=alpha)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title=f"canary {baseline_error:.3g} → {candidate_error:.3g} errors, {runs:,} runs of up to {requests:,} requests")
    for col in ("judge", "rolled back", "promoted", "undecided", "median requests to a decision"):
        table.add_column(col, justify="right")
    median = result["median_requests_to_decision"]
    table.add_row("mloop (always-valid)", f"{result['rollback_rate']:.1%}", f"{result['promote_rate']:.1%}", f"{result['undecided_rate']:.1%}",
                  f"{median:,.0f}" if median is not None else "—")
    table.add_row("naive (fixed test at every look)", f"{result['naive_rollback_rate']:.1%}", "", "", "")
    console.print(table)
    if result["false_rollback_rate"] is not None:
        console.print(f"equal error rates, so every rollback is a false one: mloop {result['false_rollback_rate']:.1%}, "
                      f"naive {result['naive_rollback_rate']:.1%}")


