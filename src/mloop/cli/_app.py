"""The command line: ``mloop init|demo|serve|runs|models|deployments|auth|keys|log|monitors``; ``drift``, ``loop``/``retrain``/``controller`` and
``deploy``/``rollout``, ``run``/``schema`` live in their own modules and register themselves on the same app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mloop.cli._common import app, console, open_workspace, workspace_option
from mloop.errors import InvalidInput, MloopError, NotFound, PayloadTooLarge

log_app = typer.Typer(help="The prediction and feedback log.", no_args_is_help=True)
app.add_typer(log_app, name="log")


@app.command()
def init(path: Annotated[Path | None, typer.Argument(help="Where to create it (default: --workspace, $MLOOP_HOME or ./.mloop).")] = None) -> None:
    """Create a workspace (idempotent: an existing one is upgraded, never wiped)."""
    from mloop.workspace import Workspace

    ws = Workspace.init(path or workspace_option())
    console.print(f"workspace ready at [bold]{ws.root}[/bold]")


@app.command()
def demo(
    sample: Annotated[float, typer.Option(help="Share of flights to use, in (0, 1]; 1 is the full year.")] = 1.0,
    trials: Annotated[int, typer.Option(help="Optuna trials for the first model.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed for sampling, search and training.")] = 0,
    last_month: Annotated[int, typer.Option(help="Last month to replay (3-12).")] = 12,
) -> None:
    """Run the whole loop on NYC flights 2013 and write an HTML report."""
    from mloop.demo import DemoConfig, run_demo, summary_rows
    from mloop.demo._records import print_attempts

    result = run_demo(workspace_option(), DemoConfig(sample=sample, trials=trials, seed=seed, last_month=last_month), console)
    table = Table(title="mloop demo: month by month (every decision taken by the server's loop)")
    for col in ("month", "rows", "served", "drift", "AUC v1", "AUC loop"):
        table.add_column(col, no_wrap=True)
    table.add_column("what the loop did", min_width=16)
    for row in summary_rows(result):
        table.add_row(*row)
    console.print(table)
    print_attempts(console, result)
    phases = Table(title="where the time went")
    phases.add_column("phase")
    phases.add_column("seconds", justify="right")
    for name, seconds in result.phases.items():
        phases.add_row(name, f"{seconds:.1f}")
    phases.add_row("[bold]total", f"[bold]{result.seconds:.1f}")
    console.print(phases)
    console.print(f"done in {result.seconds:.0f} s; report: [bold]{result.report}[/bold]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    log_flush_interval: Annotated[
        float | None, typer.Option(help="Seconds between prediction-log flushes (default $MLOOP_LOG_FLUSH_INTERVAL or 1).", min=0.01, max=60)
    ] = None,
    drain_seconds: Annotated[float, typer.Option(help="On SIGTERM, answer readiness 503 this long before closing.", min=0, max=300)] = 0.0,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without authentication (only on a loopback address).")] = False,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate: serve HTTPS (TLS 1.3 minimum).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
) -> None:
    """Serve every deployment of the workspace (MLflow scoring and Open Inference Protocol v2); every route but
    the health probes needs `Authorization: Bearer <API key or token>` (the workspace's own key is in keys/admin.key)."""
    from mloop.serving import serve as run_server
    from mloop.serving._server import check_bind, tls_options

    tls_options(tls_cert, tls_key)  # both or neither, and both present: checked before anything starts
    if no_auth:
        check_bind(host, False, source="--no-auth")
    from mloop.server import create_server_app

    run_server(open_workspace(), host=host, port=port, workers=workers, log_flush_interval=log_flush_interval, drain_seconds=drain_seconds,
               tls_cert=tls_cert, tls_key=tls_key, auth=False if no_auth else None, auth_source="--no-auth",
               announce=lambda line: console.print(line, highlight=False), app_factory=create_server_app,
               worker_factory="mloop.server:app_from_env")


@log_app.command("collect")
def log_collect(
    transport: Annotated[str | None, typer.Option(help="redis://host:port/db or nats://host:port (default: $MLOOP_LOG_TRANSPORT).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Collect what is there now, then stop.")] = False,
    consumer: Annotated[str, typer.Option(help="This collector's name within the consumer group.")] = "collector-1",
) -> None:
    """Drain the log stream that servers write to into this workspace's Parquet segments (until Ctrl-C or SIGTERM)."""
    import signal
    import threading

    from mloop.monitoring import collector_for
    from mloop.store import redact_url

    ws = open_workspace()
    url = transport or ws.settings.log_transport
    collector = collector_for(url, ws.logs_dir, consumer=consumer)
    total = 0
    try:
        if once:
            while (n := collector.poll(wait=0.5)) > 0:
                total += n
        else:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            console.print(f"collecting from {redact_url(url)} into {ws.logs_dir} (Ctrl-C stops)")
            total = collector.run(stop)
    finally:
        collector.close()
    console.print(f"{total} batch(es) collected")


#: Exit codes, documented in docs/cli.md: 0 done; 1 the operation failed (a conflict, a refusal, a service down, a
#: crash); 2 bad input (a malformed or unknown argument, a name that does not exist, a file that does not parse).
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def exit_code(exc: MloopError) -> int:
    """The exit code for ``exc``: 2 when the input was wrong (fix the command), 1 when the operation failed."""
    return EXIT_BAD_INPUT if isinstance(exc, InvalidInput | NotFound | PayloadTooLarge) else EXIT_FAILED


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``MloopError`` becomes one line on stderr and exit code 2 (bad input) or 1 (the operation failed);
    a traceback only with ``--debug``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, standalone_mode=False)
    except MloopError as exc:
        if "--debug" in args:
            raise
        Console(stderr=True, soft_wrap=True).print(f"error: {exc.message}", markup=False, highlight=False)
        raise SystemExit(exit_code(exc)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (typer.Exit, SystemExit):
        raise
    except Exception as exc:  # click's usage errors (typer vendors click: match by shape) and anything unexpected
        if type(exc).__name__ == "Abort":
            raise SystemExit(130) from None
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            raise SystemExit(2) from None
        if "--debug" in args:
            raise
        Console(stderr=True, soft_wrap=True).print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False, highlight=False)
        raise SystemExit(1) from None


from mloop.cli import (  # noqa: E402, F401 - their commands register on the app, listed after init, demo and serve
    _auth,
    _deployments,
    _docs,
    _drift,
    _edge,
    _features,
    _features_skew,
    _loop,
    _mcp,
    _models,
    _monitors,
    _optimize,
    _pipelines,
    _reproduce,
    _rollouts,
    _runs,
    _schedule,
)
