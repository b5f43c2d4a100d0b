"""``mloop schedule PIPELINE --cron EXPR``, ``schedule list``, ``schedule remove NAME`` and ``schedule run-due``: pipelines
on a cron schedule, run by the server's background work (or by ``run-due`` in the foreground)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mloop.cli._common import JSON_HELP, app, console, open_workspace, print_json_value
from mloop.errors import InvalidInput


class _ScheduleGroup(TyperGroup):
    """``mloop schedule PIPELINE …`` is ``mloop schedule add PIPELINE …``: a first word that names no subcommand is a
    pipeline file."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


schedule_app = typer.Typer(cls=_ScheduleGroup, no_args_is_help=True,
                           help="Pipelines on a cron schedule (UTC), run by `mloop serve` or `mloop controller` in one process. "
                                '`mloop schedule PIPELINE --cron "0 * * * *"` adds one (the same as `schedule add`).')
app.add_typer(schedule_app, name="schedule")

STATUS = {"running": "[cyan]running[/cyan]", "succeeded": "[green]succeeded[/green]", "failed": "[red]failed[/red]",
          "lost": "[yellow]lost[/yellow]"}


@schedule_app.command("add")
def schedule_add(
    pipeline: Annotated[Path, typer.Argument(metavar="PIPELINE", help="The pipeline file (YAML or JSON).")],
    cron: Annotated[str, typer.Option("--cron", help='Five cron fields in UTC, e.g. "0 * * * *" (every hour) or "0 3 * * 1".')],
    set_: Annotated[list[str] | None, typer.Option("--set", help="STEP.FIELD=VALUE for every run (repeatable).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The schedule's name (default: the pipeline's name).")] = None,
) -> None:
    """Run PIPELINE on a cron schedule: checked now (the file, the overrides, the expression), recorded in the workspace;
    its first run is the first cron time after now. `mloop schedule PIPELINE --cron …` is the same command."""
    from mloop.names import check_name
    from mloop.pipelines import Pipeline
    from mloop.pipelines._schedule import ScheduleBook, check_cron, new_schedule, next_slot

    check_cron(cron)
    overrides = set_ or []
    try:
        Pipeline.load(pipeline)
    except InvalidInput as exc:
        raise InvalidInput(f"PIPELINE: {exc.message} Fix the file, then schedule it again.", field="PIPELINE") from None
    try:
        loaded = Pipeline.load(pipeline, overrides)
    except InvalidInput as exc:
        raise InvalidInput(f"--set: {exc.message}", field="--set") from None
    chosen = check_name(name if name is not None else loaded.spec.name, "--name")
    workspace = open_workspace()
    now = dt.datetime.now(dt.UTC)
    schedule = ScheduleBook(workspace.root).add(new_schedule(chosen, pipeline, cron, overrides, now))
    console.print(f"schedule [bold]{schedule.name}[/bold]: {schedule.pipeline} on \"{schedule.cron}\" (UTC); first run "
                  f"{_when(next_slot(schedule.cron, now))}. `mloop serve` or `mloop controller` runs it; `mloop schedule run-due` once.")


@schedule_app.command("list")
def schedule_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """The workspace's schedules: pipeline, cron, next run, and what the last run did."""
    from rich.table import Table

    from mloop.pipelines._schedule import ScheduleBook, next_slot

    schedules = ScheduleBook(open_workspace().root).list()
    if as_json:
        print_json_value({"schedules": [{**s.to_json(), "next_run": next_slot(s.cron, s.last_slot or s.created_at).isoformat()} for s in schedules]})
        return
    if not schedules:
        console.print('no schedules yet: `mloop schedule pipeline.yaml --cron "0 * * * *"` adds one')
        return
    now = dt.datetime.now(dt.UTC)
    table = Table(title="schedules (times in UTC)")
    for column in ("name", "pipeline", "cron", "next run", "last run", "last status", "last run id"):
        table.add_column(column, overflow="fold", no_wrap=column == "cron")
    for s in schedules:
        upcoming = next_slot(s.cron, s.last_slot or s.created_at)
        status = STATUS.get(s.status or "", "—") + (f" (exit {s.exit_code})" if s.status == "failed" and s.exit_code is not None else "")
        if s.note and s.status in ("failed", "lost"):
            status += f"\n[dim]{s.note}[/dim]"
        table.add_row(s.name, _short(s.pipeline), s.cron, "due now" if upcoming <= now else _when(upcoming),
                      _when(s.started_at) if s.started_at else "—", status, s.run_id or "—")
    console.print(table)


@schedule_app.command("remove")
def schedule_remove(name: Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")]) -> None:
    """Stop scheduling NAME (a run in progress finishes; its logs stay under <workspace>/schedules/NAME)."""
    from mloop.pipelines._schedule import ScheduleBook

    removed = ScheduleBook(open_workspace().root).remove(name)
    console.print(f"removed schedule {removed.name}")


@schedule_app.command("run-due")
def schedule_run_due() -> None:
    """Run what is due now, in the foreground, and wait for it (what a server does every MLOOP_SCHEDULE_INTERVAL
    seconds); does nothing while a server or `mloop controller` holds the schedules' lease."""
    from mloop._background import LeasedLoop
    from mloop.pipelines._schedule import LEASE, ScheduleRunner

    workspace = open_workspace()
    runner = ScheduleRunner.of(workspace, detach=False)
    loop = LeasedLoop(LEASE, workspace.store.monitors, lambda: runner.tick(wait=True), interval=max(workspace.settings.schedule_interval, 1.0))
    try:
        result = loop.run_once()
    finally:
        loop.stop()
    if result is None:
        console.print("a server or `mloop controller` holds the schedules' lease and runs them; nothing done here")
        return
    decisions, outcomes = result
    for d in decisions:
        console.print(f"{d.name}: {'started' if d.action == 'start' else 'skipped'}, {d.reason}")
    for o in outcomes:
        console.print(f"{o.name}: {STATUS[o.status]}" + (f", run {o.run_id}" if o.run_id else "") + (f" — {o.message}" if o.message else ""))
    if not decisions and not outcomes:
        console.print("nothing due")


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _short(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
