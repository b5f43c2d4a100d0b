"""``mloop deployments list``, ``mloop deploy`` and ``mloop predict``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mloop.cli._common import DRY_RUN_HELP, JSON_HELP, app, console, parse_steps, print_json, print_plan, run_operation

deployments_app = typer.Typer(help="Deployments (a name served from a model alias).", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")


@deployments_app.command("list")
def deployments_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Deployments and what each serves."""
    result = run_operation("deployments.list")
    if as_json:
        print_json(result)
        return
    if not result.deployments:
        console.print("no deployments yet: deploy a model version with `mloop deploy NAME --model M --version V`, or run `mloop demo`")
        return
    table = Table(title="deployments")
    for col in ("name", "model", "alias", "serves", "rollout", "revision"):
        table.add_column(col)
    for d in result.deployments:
        rollout = ""
        if d.rollout is not None:
            shares = ", ".join(f"{arm} {w:.0%}" for arm, w in d.rollout["weights"].items())
            rollout = f"{d.rollout['kind']} r{d.rollout['revision']} ({d.rollout['status']}): {shares}"
        table.add_row(d.name, d.model, d.alias, f"v{d.serves}" if d.serves is not None else "—", rollout, str(d.revision))
    console.print(table)


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
    dry_run: Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Serve a model version, or roll it out beside the one served now under a traffic policy."""
    data = {"name": name, "model": model, "version": version, "strategy": strategy, "steps": parse_steps(steps), "alias": alias,
            "feature_service": feature_service}
    result = run_operation("deploy", data, dry_run=dry_run)
    if as_json:
        print_json(result)
    elif dry_run:
        print_plan(result)
    elif result.rollout is not None:
        console.print(f"{name}: {result.rollout['kind']} rollout of version {version} started (policy revision {result.rollout['revision']}); "
                      f"`mloop rollout status {name}` follows it")
    else:
        filled = f", filled from feature service {result.feature_service}" if result.feature_service else ""
        console.print(f"{name}: serves {model} version {version} ({model}@{result.alias}){filled}")


@app.command()
def predict(
    name: Annotated[str, typer.Argument(help="The deployment whose model scores the rows.")],
    rows: Annotated[str, typer.Option("--rows", help="A JSON list of rows, each an object keyed by input column (1-100), or @FILE.")],
    version: Annotated[int | None, typer.Option(help="A version of its model (default: the one it serves).", min=1)] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Also attribute each row's output to its input columns.")] = False,
    method: Annotated[str, typer.Option(help="auto, tree, permutation, kernel, lime or integrated_gradients.")] = "auto",
) -> None:
    """Score a few rows with what a deployment serves (nothing is logged), optionally explained; prints one JSON object."""
    import json
    from pathlib import Path

    from mloop.errors import InvalidInput

    text = Path(rows[1:]).read_text() if rows.startswith("@") else rows
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--rows: not valid JSON ({exc.msg} at character {exc.pos}).", field="--rows") from None
    print_json(run_operation("predict", {"name": name, "rows": parsed, "version": version, "explain": explain, "method": method}))
