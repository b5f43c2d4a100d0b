"""``mloop run PIPELINE`` and ``mloop schema pipeline``: run a declared pipeline, print its JSON Schema."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mloop.cli._common import app, console, open_workspace

schema_app = typer.Typer(help="JSON Schemas of mloop's files, for editors to check and complete.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

STATUS = {"ran": "[green]ran[/green]", "cached": "[cyan]cached[/cyan]", "failed": "[red]failed[/red]",
          "gate_failed": "[red]gate failed[/red]", "skipped": "[yellow]skipped[/yellow]"}


@schema_app.command("pipeline")
def schema_pipeline() -> None:
    """The JSON Schema of a pipeline file (point your editor's YAML language server at it)."""
    from mloop.pipelines import PipelineSpec

    sys.stdout.write(json.dumps(PipelineSpec.model_json_schema(by_alias=True), indent=2) + "\n")


@app.command("run")
def run_pipeline(
    pipeline: Annotated[Path, typer.Argument(help="The pipeline file (YAML or JSON).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="STEP.FIELD=VALUE, e.g. model.params.max_iter=300 (repeatable).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, whatever the cache holds.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Steps at most at once (independent steps run in parallel).")] = 2,
    ray: Annotated[str | None, typer.Option("--ray", help="Run tune steps' trials as Ray tasks: auto (a local Ray) or a cluster's HOST:PORT.")] = None,
) -> None:
    """Check the pipeline, then run its steps in DAG order: each a nested MLflow run, skipped when its code,
    parameters and inputs are those of an earlier successful run. Prints the pipeline run's id at the end."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mloop.pipelines import Pipeline, Runner, StepResult

    loaded = Pipeline.load(pipeline, set_ or [], check_code=False)  # a problem is refused here, naming the file and line (exit 2);
    # the steps' code is checked (imported) by the runner when a step will run: a rerun that reuses every step imports none of it
    workspace = open_workspace()
    if ray is not None:
        from mloop.pipelines._ray import connect

        connect(ray)  # an address that does not answer is refused (exit 2) before any step runs
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"pipeline {loaded.spec.name}", total=len(loaded.spec.steps))

        def shown(result: StepResult) -> None:
            took = f" in {result.seconds:.1f} s" if result.status == "ran" else ""
            progress.console.print(f"  {result.name:<16} {STATUS[result.status]}{took}" + (f": {result.reason}" if result.reason else ""))
            progress.advance(task)

        outcome = Runner(workspace, jobs=jobs, use_cache=not no_cache, on_step=shown, ray=ray).run(loaded)
    if outcome.reused:
        console.print(f"pipeline {loaded.spec.name}: nothing changed, every step reused ({time.perf_counter() - started:.1f} s); "
                      f"made by run {outcome.run_id}")
        return
    ran = sum(s.status == "ran" for s in outcome.steps)
    cached = sum(s.status == "cached" for s in outcome.steps)
    console.print(f"pipeline {loaded.spec.name}: {ran} ran, {cached} cached, {len(outcome.steps) - ran - cached} did not succeed "
                  f"in {time.perf_counter() - started:.1f} s; run {outcome.run_id}")
    if not outcome.ok:
        raise SystemExit(1)


@app.command("score")
def score(
    model: Annotated[str, typer.Argument(help="The model: NAME (its champion), NAME@ALIAS or NAME:VERSION.")],
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A Parquet, CSV or Arrow/Feather file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the scores (.parquet, .csv, .arrow).")],
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, max=10_000_000, help="Rows per chunk.")] = 100_000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Processes scoring chunks at once.")] = 1,
    keep: Annotated[list[str] | None, typer.Option("--keep", help="An input column to copy beside the scores (an id; repeatable).")] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="Score on Ray Data (--workers actors): auto (a local Ray) or a cluster's HOST:PORT.")] = None,
) -> None:
    """Score every row of INPUT with a registered version, in chunks (memory does not grow with the file), through
    the runtime the server uses; each output row carries the model's name and version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mloop.pipelines._score import score_file

    workspace = open_workspace()
    total = _rows_of(source)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task(f"scoring {source.name}", total=total)
        result = score_file(workspace, model, source, output, chunk_rows=chunk_rows, workers=workers, keep=keep or [],
                            on_chunk=lambda n: progress.advance(task, n), ray=ray)
    rate = result.rows / result.seconds if result.seconds > 0 else float("inf")
    console.print(f"{result.rows:,} rows scored by {result.name} v{result.version} ({result.runtime}) in {result.seconds:.1f} s "
                  f"({rate:,.0f} rows/s, {result.chunks} chunks) → {result.output}")


def _rows_of(path: Path) -> int | None:
    """The input's row count when its metadata says it (Parquet, Arrow), else None."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # an unreadable file is reported by the scoring itself, with its reason
        return None
    return None
