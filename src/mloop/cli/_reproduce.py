"""``mloop reproduce RUN_ID``: run a pipeline run again from its lineage and say, metric by metric, whether it matched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mloop.cli._common import app, console, open_workspace

VERDICT = {"exact": "[green]exact[/green]", "within": "[cyan]within tolerance[/cyan]", "differs": "[red]differs[/red]",
           "not compared": "[dim]not compared[/dim]"}


@app.command("reproduce")
def reproduce_run(
    run_id: Annotated[str, typer.Argument(help="The pipeline run's id (`mloop run` prints it), or one of its steps' runs.")],
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="A metric within tolerance × max(1, |value|) matches.")] = 1e-9,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Steps at most at once.")] = 2,
    keep: Annotated[Path | None, typer.Option("--keep", help="Keep the scratch workspace in this folder (default: removed).")] = None,
) -> None:
    """Run the pipeline again as it ran (its spec, code, data and seeds) in a scratch workspace with no cache, then
    compare each step's metrics and outputs; where one differs, say why (data, code, an input, the environment, or
    nondeterminism). Exit 0 when everything matched (exactly or within the tolerance), 1 when something differs."""
    from mloop.pipelines._reproduce import reproduce

    workspace = open_workspace()
    with console.status(f"reproducing run {run_id} in a scratch workspace"):
        result = reproduce(workspace, run_id, tolerance=tolerance, jobs=jobs, keep=keep)
    table = Table(title=f"run {result.run_id} reproduced as {result.reproduced_run_id}")
    for column in ("step", "metric", "original", "reproduced", "verdict", "why"):
        table.add_column(column, overflow="fold")
    for step in result.steps:
        if not step.metrics:
            table.add_row(step.step, "—", "", "", VERDICT[step.verdict], step.why)
        for i, m in enumerate(step.metrics):
            table.add_row(step.step if i == 0 else "", m.metric, f"{m.original:.10g}", "—" if m.reproduced is None else f"{m.reproduced:.10g}",
                          VERDICT[m.verdict], step.why if i == 0 else "")
    console.print(table)
    if result.environment:
        console.print("environment then → now: " + ", ".join(f"{p} {a} → {b}" for p, (a, b) in sorted(result.environment.items())))
    console.print(f"verdict: {VERDICT[result.verdict]} (tolerance {tolerance:g})")
    if result.verdict == "differs":
        raise SystemExit(1)
