"""Tracked runs, newest first, a page at a time (the dashboard stays interactive over tens of thousands)."""

from __future__ import annotations

import math

from pydantic import Field

from mloop.operations._core import Context, ExperimentName, Http, Operation, Output, Paged, operation


class RunsQuery(Paged):
    experiment: ExperimentName | None = Field(default=None, description="Only this experiment.")


class RunRow(Output):
    run_id: str
    name: str
    experiment: str
    status: str
    start_time: float
    metrics: dict[str, float | None]


class Runs(Output):
    total: int = Field(description="Runs in all (of the experiment, if one was named).")
    offset: int
    runs: list[RunRow]


def _list(ctx: Context, query: RunsQuery) -> Runs:
    runs, total = ctx.workspace.tracker.runs_page(query.experiment, offset=query.offset, limit=query.limit)
    rows = [RunRow(run_id=r.run_id, name=r.name, experiment=r.experiment, status=r.status, start_time=r.start_time,
                   metrics={k: (v if math.isfinite(v) else None) for k, v in sorted(r.metrics.items())}) for r in runs]
    return Runs(total=total, offset=query.offset, runs=rows)


LIST = operation(Operation(
    "runs.list", "Tracked runs, newest first, one page at a time: id, name, experiment, status, start, latest metrics.", "viewer",
    RunsQuery, Runs, _list, http=Http("GET", "/api/runs"), tags=("runs",),
))
