"""The command line: ``mloop init|demo|serve|runs|models|deployments|auth|keys|log|monitors``; ``drift``, ``loop``/``retrain``/``controller`` and
``deploy``/``rollout``, ``run``/``schema`` live in their own modules and register themselves on the same app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mloop.cli import _docs, _drift, _edge, _features, _features_skew, _loop, _pipelines, _reproduce, _rollouts, _schedule  # noqa: F401 - their commands register on the app
from mloop.cli._common import app, console, open_workspace, workspace_option
from mloop.errors import MloopError
from mloop.roles import ROLES

runs_app = typer.Typer(help="Tracked runs.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
deployments_app = typer.Typer(help="Deployments (a name served from a model alias).", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(deployments_app, name="deployments")
auth_app = typer.Typer(help="API keys and tokens for the server.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")
keys_app = typer.Typer(help="The workspace's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
log_app = typer.Typer(help="The prediction and feedback log.", no_args_is_help=True)
app.add_typer(log_app, name="log")
monitors_app = typer.Typer(help="Monitors: drift windows, persistence and alarms per deployment.", no_args_is_help=True)
app.add_typer(monitors_app, name="monitors")


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
    from mloop.automation import create_server_app

    run_server(open_workspace(), host=host, port=port, workers=workers, log_flush_interval=log_flush_interval, drain_seconds=drain_seconds,
               tls_cert=tls_cert, tls_key=tls_key, auth=False if no_auth else None, auth_source="--no-auth",
               announce=lambda line: console.print(line, highlight=False), app_factory=create_server_app,
               worker_factory="mloop.automation:app_from_env")


@runs_app.command("list")
def runs_list(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.", min=1, max=10000)] = 20,
) -> None:
    """Tracked runs, newest first, grouped by experiment: id, name, status, start (UTC), then the metrics."""
    import datetime as dt

    from rich.text import Text

    runs = open_workspace().tracker.list_runs(experiment, max_results=limit)
    if not runs:
        console.print("no runs yet: `mloop demo` makes some, or track your own with Workspace.tracker.start_run(...)")
        return
    for name in dict.fromkeys(r.experiment for r in runs):
        console.print(Text(f"experiment {name}", style="bold"))
        for r in (r for r in runs if r.experiment == name):
            started = dt.datetime.fromtimestamp(r.start_time, dt.UTC).strftime("%Y-%m-%d %H:%M") if r.start_time else "-"
            console.print(Text(f"  {r.run_id}  {r.status:<8}  {started}  {r.name}"), no_wrap=True, overflow="ellipsis")
            metrics = "  ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items()) if v == v)
            if metrics:
                console.print(Text(f"      {metrics}", style="dim"), overflow="fold")


@models_app.command("list")
def models_list() -> None:
    """Registered models with their aliases."""
    models = open_workspace().registry.list_models()
    if not models:
        console.print("no registered models yet: register one with Workspace.registry.register(...), or run `mloop demo`")
        return
    table = Table(title="models")
    for col in ("name", "versions", "latest", "aliases"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m["aliases"].items()))
        table.add_row(m["name"], str(m["versions"]), f"v{m['latest_version']}", aliases)
    console.print(table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "latest",
) -> None:
    """One model: its versions and the model card of one version."""
    ws = open_workspace()
    info = ws.registry.resolve(name, version)
    table = Table(title=f"{name} versions")
    for col in ("version", "aliases", "run", "manifest sha256"):
        table.add_column(col, overflow="fold")
    for v in ws.registry.versions(name):
        table.add_row(f"v{v.version}", ", ".join(v.aliases), v.run_id or "", (v.manifest_sha256 or "")[:16])
    console.print(table)
    console.print(ws.registry.card(name, info.version), markup=False, highlight=False)


@models_app.command("export")
def models_export(
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .tar.gz bundle.")],
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
) -> None:
    """Write a model version as a bundle another workspace can import (files + digests, verified on the way out)."""
    ref: str | int = int(version) if version.isdigit() else version
    path = open_workspace().registry.export_bundle(name, ref, output)
    console.print(f"wrote {path}")


@models_app.command("import")
def models_import(
    archive: Path,
    name: Annotated[str | None, typer.Option(help="Register under this name (default: the bundle's).")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
) -> None:
    """Register a bundle as a new version: extracted safely, every digest checked, twin rebuilt, signed with this workspace's key."""
    info = open_workspace().registry.import_bundle(archive, name=name, alias=alias)
    console.print(f"registered {info.name} v{info.version}" + (f" as {alias}" if alias else ""))


@deployments_app.command("list")
def deployments_list() -> None:
    """Deployments and what each serves."""
    store = open_workspace().store
    deployments = store.deployments.list()
    live = {p.deployment: p for p in store.rollouts.all_live()}
    if not deployments:
        console.print("no deployments yet: deploy a model alias with mloop.serving.Deployments(...).deploy(...), or run `mloop demo`")
        return
    table = Table(title="deployments")
    for col in ("name", "model", "alias", "rollout", "revision"):
        table.add_column(col)
    for d in deployments:
        policy = live.get(d.name)
        rollout = f"{policy.kind} r{policy.revision} ({policy.status})" if policy else str(d.rollout or "")
        table.add_row(d.name, d.model_name, d.alias, rollout, str(d.revision))
    console.print(table)


@auth_app.command("create-key")
def auth_create_key(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists and the audit log).")] = "cli",
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    key, row = open_workspace().store.api_keys.create(name, role)
    Console(stderr=True).print(f"API key {row.id} ({row.role}) created; it is shown only now:")
    sys.stdout.write(key + "\n")


@auth_app.command("list-keys")
def auth_list_keys() -> None:
    """API keys: id, name, role, created, revoked (never the secret)."""
    import datetime as dt

    table = Table(title="API keys")
    for col in ("id", "name", "role", "created (UTC)", "revoked"):
        table.add_column(col)
    for k in open_workspace().store.api_keys.list():
        fmt = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else ""  # noqa: E731
        table.add_row(k.id, k.name, k.role, fmt(k.created_at), fmt(k.revoked_at))
    console.print(table)


@auth_app.command("revoke")
def auth_revoke(key_id: str) -> None:
    """Revoke an API key (servers refuse it within two seconds)."""
    open_workspace().store.api_keys.revoke(key_id)
    console.print(f"revoked {key_id}")


@auth_app.command("token")
def auth_token(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    subject: Annotated[str, typer.Option(help="Who the token is for (the sub claim).")] = "cli",
    ttl: Annotated[float, typer.Option(help="Seconds until it expires.", min=1, max=30 * 86400)] = 3600,
) -> None:
    """Mint a JWT (HS256 under the workspace secret) and print it."""
    from mloop.security import Authenticator

    ws = open_workspace()
    sys.stdout.write(Authenticator.configured(ws.settings, ws.keyring, ws.store.api_keys).mint(subject, role, ttl) + "\n")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key, re-sign every model manifest with it (each old signature must verify first), drop the old key."""
    from mloop.security import rotate_signing_key

    ws = open_workspace()
    kid, count = rotate_signing_key(ws.keyring, ws.store)
    console.print(f"signing key {kid} active; {count} manifest(s) re-signed")


@keys_app.command("adopt")
def keys_adopt() -> None:
    """Sign manifests registered before signing existed, after checking their files still match their digests."""
    adopted = open_workspace().registry.adopt_unsigned()
    console.print(f"{len(adopted)} manifest(s) signed" + (f": {', '.join(adopted)}" if adopted else ""))


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


@monitors_app.command("apply")
def monitors_apply(file: Annotated[Path, typer.Argument(help="YAML file with a list under 'monitors:'.")]) -> None:
    """Create or update every monitor of FILE (all are checked before any is written)."""
    from mloop.monitoring import load_monitors, register_monitor

    ws = open_workspace()
    configs = load_monitors(file)
    for config in configs:
        ws.store.deployments.get(config.deployment)
    for config in configs:
        register_monitor(ws.store, config)
        bound = config.freshness.max_age if config.freshness is not None else 0.0
        what = f"{config.window.kind} windows" if config.window is not None else f"feature freshness ≤ {bound:g} s"
        console.print(f"monitor [bold]{config.deployment}/{config.name}[/bold]: {what}")


@monitors_app.command("list")
def monitors_list() -> None:
    """Monitors, their windows, the latest verdict and any error."""
    ws = open_workspace()
    table = Table(title="monitors")
    for col in ("deployment", "name", "window", "windows", "last", "alarm", "error"):
        table.add_column(col)
    for m in ws.store.monitors.list():
        windows = ws.store.monitors.windows(m.id, last=1)
        window, state = m.config.get("window"), ws.store.monitors.state(m.id)
        last = windows[-1] if windows else None
        if window is None:  # a freshness monitor: its state holds the last check
            kind, verdict = f"freshness ≤ {m.config['freshness']['max_age']:g} s", ("stale: " + ", ".join(state["stale"]) if state.get("stale")
                                                                                else "fresh" if "checked" in state else "—")
        else:
            kind, verdict = f"{window['kind']} {window.get('size') or ''}".strip(), ("drift" if last.drift else "stable") if last else "—"
        table.add_row(m.deployment, m.name, kind, str(ws.store.monitors.count_windows(m.id)), verdict, ("yes" if last and last.alarm else "no"),
                      str(state.get("error", "")))
    console.print(table)


@monitors_app.command("remove")
def monitors_remove(deployment: str, name: str) -> None:
    """Delete a monitor and its window history."""
    open_workspace().store.monitors.remove(deployment, name)
    console.print(f"removed monitor {deployment}/{name}")


@monitors_app.command("windows")
def monitors_windows(
    deployment: str, name: str, last: Annotated[int, typer.Option(min=1, max=100000, help="How many of the latest windows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The latest windows of a monitor: rows, verdict, alarm and report."""
    import datetime as dt
    import json

    ws = open_workspace()
    monitor = ws.store.monitors.get(deployment, name)
    rows = ws.store.monitors.windows(monitor.id, last=last)
    if as_json:
        for w in rows:
            record = {"id": w.id, "start": w.start, "end": w.end, "rows": w.rows, "drift": w.drift, "alarm": w.alarm, "report": w.report,
                      "summary": w.summary}
            sys.stdout.write(json.dumps(record) + "\n")
        return
    table = Table(title=f"{deployment}/{name}")
    for col in ("id", "end (UTC)", "rows", "drift", "alarm", "drifted", "report"):
        table.add_column(col)
    for w in rows:
        drifted = [f["name"] for f in w.summary.get("features", []) if f.get("drift")]
        table.add_row(str(w.id), dt.datetime.fromtimestamp(w.end, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), str(w.rows),
                      "yes" if w.drift else "no", "yes" if w.alarm else "no", ", ".join(drifted), w.report or "")
    console.print(table)


@monitors_app.command("run")
def monitors_run() -> None:
    """Evaluate every closed window now (what a server's scheduler does each tick), if no server holds the lease."""
    from mloop.monitoring import MonitorScheduler
    from mloop.serving import monitor_runner, online_features

    ws = open_workspace()
    features = online_features(ws)
    scheduler = MonitorScheduler(monitor_runner(ws, features), interval=max(ws.settings.monitor_interval, 1.0))
    try:
        results = scheduler.run_once()
    finally:
        scheduler.stop()
        features.close()
    if results is None:
        console.print("a server holds the monitor lease and evaluates the monitors; nothing done here")
        return
    for r in results:
        console.print(f"{r.deployment}/{r.monitor}: {r.rows} rows, {'drift' if r.drift else 'stable'}{', ALARM' if r.alarm else ''}"
                      + (f" ({', '.join(r.drifted)})" if r.drifted else ""))
    console.print(f"{len(results)} window(s) evaluated")


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``MloopError`` becomes one line on stderr and exit code 2 (a traceback only with ``--debug``)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, standalone_mode=False)
    except MloopError as exc:
        if "--debug" in args:
            raise
        Console(stderr=True, soft_wrap=True).print(f"error: {exc.message}", markup=False, highlight=False)
        raise SystemExit(2) from None
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


from mloop.cli import _optimize  # noqa: E402, F401 - `models optimize` registers on models_app, defined above
