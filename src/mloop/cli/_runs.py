"""``mloop runs list``: tracked runs, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

import typer

from mloop.cli._common import JSON_HELP, app, console, print_json, run_operation

runs_app = typer.Typer(help="Tracked runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.", min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many (the next page: offset + limit).", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Tracked runs, newest first, grouped by experiment: id, name, status, start (UTC), then the metrics."""
    import datetime as dt

    from rich.text import Text

    page = run_operation("runs.list", {"experiment": experiment, "limit": limit, "offset": offset})
    if as_json:
        print_json(page)
        return
    if not page.runs:
        console.print("no runs yet: `mloop demo` makes some, or track your own with Workspace.tracker.start_run(...)" if not page.total
                      else f"no runs past {offset} (there are {page.total})")
        return
    for name in dict.fromkeys(r.experiment for r in page.runs):
        console.print(Text(f"experiment {name}", style="bold"))
        for r in (r for r in page.runs if r.experiment == name):
            started = dt.datetime.fromtimestamp(r.start_time, dt.UTC).strftime("%Y-%m-%d %H:%M") if r.start_time else "-"
            console.print(Text(f"  {r.run_id}  {r.status:<8}  {started}  {r.name}"), no_wrap=True, overflow="ellipsis")
            metrics = "  ".join(f"{k}={v:.4g}" for k, v in r.metrics.items() if v is not None)
            if metrics:
                console.print(Text(f"      {metrics}", style="dim"), overflow="fold")
    if page.total > offset + len(page.runs):
        console.print(f"runs {offset + 1}–{offset + len(page.runs)} of {page.total}; the next page: --offset {offset + len(page.runs)}", style="dim")
