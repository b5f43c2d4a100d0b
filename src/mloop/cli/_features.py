"""The feature store: ``mloop features apply|list|historical``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mloop.cli._common import JSON_HELP, actor, app, console, open_workspace, print_json, run_operation

features_app = typer.Typer(help="The feature store: definitions, point-in-time training joins.", no_args_is_help=True)
app.add_typer(features_app, name="features")


def _registry() -> Any:
    from mloop.features._definitions import FeatureRegistry

    return FeatureRegistry(open_workspace().store)


@features_app.command("apply")
def features_apply(
    file: Annotated[Path, typer.Argument(help="A YAML (or JSON) file of entities, feature_views and feature_services.")],
    allow_incompatible: Annotated[bool, typer.Option("--allow-incompatible", help="Apply a view change that removes, retypes or "
                                                     "re-keys features (models trained on the old schema would break).")] = False,
) -> None:
    """Check FILE and store each definition that changed as a new version (all or nothing); an incompatible change to
    a view is refused, naming it, unless --allow-incompatible."""
    from mloop.features._spec import load_definitions

    registry = _registry()
    defs = load_definitions(file, known_entities=registry.entities(), known_views=registry.views())
    for change in registry.apply(defs, actor=actor(), allow_incompatible=allow_incompatible):
        note = f" ({change.note})" if change.note else ""
        console.print(f"{change.kind} {change.name}: {change.action}, version {change.version}{note}")


def _span(seconds: float) -> str:
    """A duration as its largest whole unit: 86400 → 1d, 5400 → 90m, 1.5 → 1.5s."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@features_app.command("list")
def features_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """The applied entities, feature views (with TTL and freshness) and services, newest versions."""
    result = run_operation("features.list", {})
    if as_json:
        print_json(result)
        return
    if not (result.entities or result.views or result.services):
        console.print("no feature definitions yet: `mloop features apply features.yaml` adds them (docs/features.md)")
        return
    table = Table(title="feature definitions")
    for column in ("kind", "name", "version", "what"):
        table.add_column(column)
    for name, keys in result.entities.items():
        table.add_row("entity", name, "", "keys " + ", ".join(keys))
    for view in result.views:
        ttl = f", ttl {_span(view.ttl_seconds)}" if view.ttl_seconds else ""
        age = "never materialised" if not view.materialized else "empty" if view.age_seconds is None else f"newest event {view.age_seconds:.0f} s old"
        stale = " (stale)" if view.ttl_seconds and view.age_seconds is not None and view.age_seconds > view.ttl_seconds else ""
        table.add_row("view", view.name, str(view.version), f"{len(view.features)} features of {', '.join(view.entities)}{ttl}; {age}{stale}")
    for name, views in result.services.items():
        table.add_row("service", name, "", "reads " + ", ".join(views))
    console.print(table)


@features_app.command("historical")
def features_historical(
    entities: Annotated[Path, typer.Option("--entities", help="A Parquet file of entity rows: the join keys and a timestamp column.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the rows with their features (Parquet).")],
    features: Annotated[str | None, typer.Option("--features", help="view:feature,… (view:* for all of a view's).")] = None,
    service: Annotated[str | None, typer.Option("--service", help="A feature service: the features a model uses.")] = None,
    timestamp: Annotated[str, typer.Option("--timestamp", help="The entity rows' time column.")] = "event_timestamp",
    as_of: Annotated[str, typer.Option("--as-of", help="known: only values written by each row's time (no leakage); event: Feast's rule.")] = "known",
    full_names: Annotated[bool, typer.Option("--full-names", help="Name the columns view__feature.")] = False,
) -> None:
    """Each entity row, in order, with each feature as of its time: the newest value within the view's TTL (ties to
    the latest written), nulls where there is none; exact, on DuckDB."""
    from mloop.errors import InvalidInput
    from mloop.features._offline import get_historical_features, parse_features

    if as_of not in ("known", "event"):
        raise InvalidInput(f"--as-of must be known or event, got {as_of!r}.", field="--as-of")
    if not entities.is_file():
        raise InvalidInput(f"--entities {entities}: no such file.", field="--entities")
    started = time.perf_counter()
    with console.status("joining"):
        get_historical_features(_registry(), str(entities), features=parse_features(features), service=service, timestamp=timestamp,
                                as_of=as_of, full_names=full_names, out=output)  # type: ignore[arg-type]
    console.print(f"wrote {output} in {time.perf_counter() - started:.1f} s")


def _online_store(ws: Any) -> Any:
    from mloop.features._online import open_online_store

    return open_online_store(ws.settings.online_store, workspace_root=ws.root)


@features_app.command("materialize")
def features_materialize(
    view: Annotated[list[str] | None, typer.Option("--view", help="A feature view to materialise (repeat for more; default: all).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Move rows known by this ISO time (default: now; naive means UTC).")] = None,
) -> None:
    """Move each view's latest known value per entity into the online store (MLOOP_ONLINE_STORE, default SQLite in
    the workspace), incrementally: only rows that became known since the last run; a crash leaves the old state."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from mloop.features._definitions import FeatureRegistry
    from mloop.features._materialize import materialize, parse_time

    parse_time(end, "--end")  # checked before anything is opened
    ws = open_workspace()
    registry, store = FeatureRegistry(ws.store), _online_store(ws)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as progress:
            task = progress.add_task("materialising")
            moved: dict[str, int] = {}

            def on_chunk(name: str, rows: int) -> None:
                moved[name] = moved.get(name, 0) + rows
                progress.update(task, description=f"{name}: {moved[name]:,} rows")

            results = materialize(registry, store, views=view, end=end, on_chunk=on_chunk)
    finally:
        store.close()
    for result in results:
        note = " (definition changed: rebuilt)" if result.rebuilt else ""
        console.print(f"{result.view}: {result.rows:,} rows moved in {result.seconds:.2f} s{note}")


@features_app.command("online")
def features_online(
    key: Annotated[list[str], typer.Option("--key", help="An entity: driver_id=1 (composite: driver_id=1,city=x); repeat for more.")],
    features: Annotated[str | None, typer.Option("--features", help="view:feature,… (view:* for all of a view's).")] = None,
    service: Annotated[str | None, typer.Option("--service", help="A feature service: the features a model uses.")] = None,
    full_names: Annotated[bool, typer.Option("--full-names", help="Name the features view__feature.")] = False,
) -> None:
    """Each entity's features from the online store as JSON (null where it has no row or its row is past the TTL)."""
    import sys

    import orjson

    from mloop.errors import InvalidInput
    from mloop.features._definitions import FeatureRegistry
    from mloop.features._offline import parse_features
    from mloop.features._online import OnlineReader

    rows = []
    for item in key:
        row = {}
        for part in item.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise InvalidInput(f"--key takes join_key=value (composite: a=1,b=2), got {item!r}.", field="--key")
            text = value.strip()
            row[name.strip()] = int(text) if text.lstrip("-").isdigit() and text.lstrip("-") == str(int(text.lstrip("-"))) else text
        rows.append(row)
    ws = open_workspace()
    store = _online_store(ws)
    try:
        reader = OnlineReader(store, FeatureRegistry(ws.store), features=parse_features(features), service=service, full_names=full_names)
        got = reader.get(rows)
    finally:
        store.close()
    out = [{column: got[column][i] for column in got} for i in range(len(rows))]
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC).decode() + "\n")


@features_app.command("lineage")
def features_lineage(
    view: Annotated[str, typer.Argument(help="A feature view's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
) -> None:
    """The runs whose data was joined from VIEW (id, experiment, start, the view's version) and the registered model
    versions those runs made (name, version, aliases), newest first."""
    import datetime as dt
    import json
    import sys

    from mloop.errors import NotFound
    from mloop.tracking._tracker import FEATURE_VIEW_TAG

    ws = open_workspace()
    if not ws.store.features.history("view", view):
        known = ", ".join(r.name for r in ws.store.features.all_latest("view")) or "none yet"
        raise NotFound(f"No feature view {view!r} (views: {known}); `mloop features list` shows them.")
    runs = [{"run_id": r.run_id, "experiment": r.experiment, "name": r.name, "status": r.status,
             "started": dt.datetime.fromtimestamp(r.start_time, dt.UTC).isoformat(timespec="seconds") if r.start_time else None,
             "versions": [int(v) for v in value.split(",") if v.strip().isdigit()]} for r, value in ws.tracker.runs_tagged(f"{FEATURE_VIEW_TAG}{view}")]
    used = {r["run_id"]: r["versions"] for r in runs}
    models = [{"name": m.name, "version": m.version, "aliases": list(m.aliases), "run_id": m.run_id, "view_versions": used.get(m.run_id or "", [])}
              for m in sorted(ws.registry.versions_from_runs(used), key=lambda m: (m.created_at, m.name, m.version), reverse=True)]
    if as_json:
        sys.stdout.write(json.dumps({"view": view, "runs": runs, "models": models}) + "\n")
        return
    if not runs:
        console.print(f"no run has recorded using {view} yet: a pipeline's feature-store ingest, or record_feature_lineage, records it")
        return

    def show(line: str) -> None:  # whole, however narrow the terminal: ids are copied from here
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    console.print(f"runs that used {view}, newest first (run, view version, started UTC, experiment / run name)", style="bold")
    for r in runs:
        started = (r["started"] or "-")[:16].replace("T", " ")
        show(f"  {r['run_id']}  {', '.join(f'v{v}' for v in r['versions'])}  {started}  {r['experiment']} / {r['name']}")
    if models:
        console.print(f"model versions trained on {view} (model, aliases, view version, run)", style="bold")
    for m in models:
        aliases = f" ({', '.join(m['aliases'])})" if m["aliases"] else ""
        show(f"  {m['name']} v{m['version']}{aliases}  {', '.join(f'v{v}' for v in m['view_versions'])}  run {m['run_id']}")
