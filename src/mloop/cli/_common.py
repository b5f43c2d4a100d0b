"""What every command module shares: the top-level Typer app, the console, the global options and the workspace."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mloop.errors import InvalidInput

app = typer.Typer(help="mloop: track, register, serve, monitor, retrain and roll out models.", no_args_is_help=True, add_completion=False)
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
