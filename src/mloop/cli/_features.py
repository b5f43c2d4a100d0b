"""The feature store: ``mloop features apply|list|historical``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mloop.cli._common import actor, app, console, open_workspace

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


@features_app.command("list")
def features_list() -> None:
    """The applied entities, feature views and services, newest versions."""
    registry = _registry()
    store = registry.store.features
    table = Table(title="feature definitions")
    for column in ("kind", "name", "version", "what"):
        table.add_column(column)
    for row in store.all_latest("entity"):
        table.add_row("entity", row.name, str(row.version), "keys " + ", ".join(row.document["join_keys"]))
    for row in store.all_latest("view"):
        doc = row.document
        ttl = f", ttl {doc['ttl']}" if doc.get("ttl") else ""
        table.add_row("view", row.name, str(row.version), f"{len(doc['features'])} features of {', '.join(doc['entities'])}{ttl}")
    for row in store.all_latest("service"):
        table.add_row("service", row.name, str(row.version), ", ".join(row.document["features"]))
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
