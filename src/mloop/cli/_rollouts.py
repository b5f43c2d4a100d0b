"""Deploying and rolling out: ``mloop deploy`` and ``mloop rollout status|set|promote|rollback|pause|resume|simulate``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mloop.cli._common import actor, app, console, open_workspace, parse_steps
from mloop.errors import InvalidInput

rollout_app = typer.Typer(help="Rollouts: traffic policies and the statistics that judge them.", no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")


def open_rollouts() -> Any:
    from mloop.serving import Rollouts

    ws = open_workspace()
    return Rollouts(ws.registry, ws.store, ws.bus)


@app.command()
def deploy(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    model: Annotated[str, typer.Option("--model", help="The registered model.")],
    version: Annotated[int, typer.Option("--version", help="The version to serve or roll out.", min=1)],
    strategy: Annotated[str | None, typer.Option(help="canary, blue-green, bandit or shadow beside what the deployment serves now; "
                                                      "none serves the version at once.")] = None,
    steps: Annotated[str | None, typer.Option(help="Canary shares in percent, ending at 100 (default 1,5,25,50,100).")] = None,
    alias: Annotated[str, typer.Option(help="The alias a new deployment serves.")] = "champion",
    feature_service: Annotated[str | None, typer.Option("--feature-service", help="A feature service whose online values the server fills "
                                                        "into each request from its join keys ('' stops filling).")] = None,
) -> None:
    """Serve a model version, or roll it out beside the one served now under a traffic policy."""
    import dataclasses

    from mloop.serving import Deployments
    from mloop.store import ServingConfig

    ws = open_workspace()
    shares = parse_steps(steps)
    exists = name in {d.name for d in ws.store.deployments.list()}
    if strategy is None:
        if shares is not None:
            raise InvalidInput("--steps needs --strategy canary.", field="--steps")
        current = ws.store.deployments.get(name) if exists else None
        current_alias = current.alias if current is not None else alias
        serving = None
        if feature_service is not None:
            serving = dataclasses.replace(current.serving if current is not None else ServingConfig(), feature_service=feature_service or None)
        if serving is not None and serving.feature_service is not None:
            Deployments(ws.registry, ws.store, ws.bus).check_feature_service(serving.feature_service)  # before the alias moves
        ws.registry.set_alias(model, current_alias, version)
        if current is None or serving is not None:
            Deployments(ws.registry, ws.store, ws.bus).deploy(name, model, current_alias, serving=serving, actor=actor())
        filled = f", filled from feature service {serving.feature_service}" if serving is not None and serving.feature_service else ""
        console.print(f"{name}: serves {model} version {version} ({model}@{current_alias}){filled}")
        return
    if feature_service is not None:
        raise InvalidInput("--feature-service changes what a deployment serves at once: set it without --strategy.", field="--feature-service")
    if not exists:
        raise InvalidInput(f"{name!r} does not exist yet: deploy a first version without --strategy.", field="name")
    if ws.store.deployments.get(name).model_name != model:
        raise InvalidInput(f"{name!r} serves {ws.store.deployments.get(name).model_name!r}, not {model!r}.", field="--model")
    row = open_rollouts().start(name, version, strategy, steps=shares, actor=actor())
    console.print(f"{name}: {row.kind} rollout of version {version} started (policy revision {row.revision}); "
                  f"`mloop rollout status {name}` follows it")


@rollout_app.command("status")
def rollout_status(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
) -> None:
    """The deployment's traffic policy: its arms and shares, its history, and the decisions taken with their statistics."""
    import json

    status = open_rollouts().status(name, last=20)
    if as_json:
        sys.stdout.write(json.dumps(status) + "\n")
        return
    live = status["live"]
    if live is None:
        console.print(f"{name}: serves version {status['serves']}; no rollout in progress")
    else:
        shares = ", ".join(f"{arm} {w:.0%}" for arm, w in live["weights"].items())
        console.print(f"{name}: {live['kind']} (revision {live['revision']}, {live['status']}) over version {status['serves']}: {shares}")
    table = Table(title=f"{name}: policies")
    for col in ("revision", "kind", "status", "by", "why"):
        table.add_column(col)
    for p in status["history"]:
        table.add_row(str(p["revision"]), p["kind"], p["status"], p["actor"], p["reason"])
    console.print(table)
    if status["decisions"]:
        table = Table(title=f"{name}: last decisions")
        for col in ("action", "by", "why"):
            table.add_column(col)
        for d in status["decisions"]:
            table.add_row(d["action"], d["actor"], str(d["decision"].get("reason", "")))
        console.print(table)


@rollout_app.command("set")
def rollout_set(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    file: Annotated[Path, typer.Argument(help="A policy document, YAML or JSON: `policy: canary`, its versions, steps, metrics…")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
) -> None:
    """Make a policy document the deployment's live traffic policy (validated first; the server's driver takes it from there)."""
    from mloop.files import read_yaml

    document = read_yaml(file, "policy")
    try:
        row = open_rollouts().set(name, document, actor=actor(), reason=reason or f"set from {file.name}")
    except InvalidInput as exc:
        raise InvalidInput(f"{file}: {exc.message}", field=exc.field) from None
    console.print(f"{name}: {row.kind} policy set (revision {row.revision}); `mloop rollout status {name}` follows it")


@rollout_app.command("promote")
def rollout_promote(name: Annotated[str, typer.Argument(help="The deployment.")]) -> None:
    """End the rollout by making its new version the one the deployment serves."""
    version = open_rollouts().promote(name, actor=actor())
    console.print(f"{name}: promoted; serves version {version}")


@rollout_app.command("rollback")
def rollout_rollback(name: Annotated[str, typer.Argument(help="The deployment.")]) -> None:
    """Return to the version served before the last switch or promotion, and print it."""
    version = open_rollouts().rollback(name, actor=actor())
    console.print(f"{name}: rolled back; serves version {version}")


@rollout_app.command("pause")
def rollout_pause(name: Annotated[str, typer.Argument(help="The deployment.")]) -> None:
    """Hold the rollout where it is: shares stay, no automatic decision is taken."""
    open_rollouts().pause(name, actor=actor())
    console.print(f"{name}: rollout paused")


@rollout_app.command("resume")
def rollout_resume(name: Annotated[str, typer.Argument(help="The deployment.")]) -> None:
    """Let a paused rollout go on."""
    open_rollouts().resume(name, actor=actor())
    console.print(f"{name}: rollout resumed")


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


