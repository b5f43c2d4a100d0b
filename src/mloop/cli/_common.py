"""What every command module shares: the top-level Typer app, the console, the global options and the workspace."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mloop.errors import InvalidInput

app = typer.Typer(help="mloop: track, register, serve, monitor, retrain and roll out models.", no_args_is_help=True)
console = Console()
_state: dict[str, Any] = {"workspace": None, "debug": False}


def _quiet_libraries() -> None:
    for name in ("mlflow", "alembic", "optuna", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


@app.callback()
def _main(
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default: $MLOOP_HOME or ./.mloop).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["workspace"] = workspace
    _state["debug"] = debug
    _quiet_libraries()


def workspace_option() -> Path | None:
    """The folder ``--workspace`` named, if any."""
    return _state["workspace"]  # type: ignore[no-any-return]


def open_workspace() -> Any:
    """The workspace the global ``--workspace`` option (or ``$MLOOP_HOME``, or ``./.mloop``) names."""
    from mloop.workspace import Workspace

    return Workspace.open(_state["workspace"])


def actor() -> str:
    """Who runs the command, for the audit log."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def key_values(items: list[str] | None, option: str, form: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` options as pairs; anything else is refused naming the option."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InvalidInput(f"{option} takes {form}, got {item!r}.", field=option)
        pairs.append((key, value))
    return pairs


def parse_steps(steps: str | None) -> list[float] | None:
    """``--steps 1,5,25,50,100`` as numbers; anything else is refused naming the option."""
    if steps is None:
        return None
    try:
        return [float(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        raise InvalidInput(f"--steps takes shares separated by commas (1,5,25,50,100), got {steps!r}.", field="--steps") from None


JSON_HELP = "Print one JSON object to stdout: the operation's output, as the HTTP API answers it."
DRY_RUN_HELP = "Check everything and print what would change, without changing anything."


def local_caller() -> Any:
    """The person at the terminal: the workspace's owner, so every role (``admin``); the audit log names ``cli:<user>``."""
    from mloop.operations import Caller

    return Caller(actor().removeprefix("cli:") or "cli", "admin", "cli")


def run_operation(name: str, data: dict[str, Any] | None = None, *, dry_run: bool = False, workspace: Any = None) -> Any:
    """Run operation ``name`` (``mloop.operations``) on the workspace for the local user; what every command does."""
    from mloop.operations import Context, invoke

    return invoke(name, Context(workspace or open_workspace(), local_caller()), data or {}, dry_run=dry_run)


def print_json(result: Any) -> None:
    """An operation's output as one line of JSON on stdout (the HTTP API's body)."""
    import sys

    sys.stdout.write(result.model_dump_json() + "\n")


def print_json_value(value: Any) -> None:
    """A plain JSON value as one line on stdout, for ``--json`` on a command no operation covers."""
    import sys

    import orjson

    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def print_plan(result: Any) -> None:
    """A dry run's plan, readable."""
    import json

    console.print(f"[bold]dry run[/bold] of {result.operation}: nothing was changed; it would", highlight=False)
    console.print_json(json.dumps(result.would))
