"""``mloop features skew DEPLOYMENT``: what a deployment was served online beside what the training join gives offline
for the same keys and times."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from mloop.cli._common import console, open_workspace
from mloop.cli._features import features_app


@features_app.command("skew")
def features_skew(
    deployment: Annotated[str, typer.Argument(help="A deployment that fills in a feature service.")],
    since: Annotated[str | None, typer.Option("--since", help="Logged requests from this ISO time (default: the last 24 hours).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000_000, help="At most this many of the latest logged rows.")] = 10_000,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="Numbers closer than this (absolute or relative) agree.")] = 1e-6,
    max_rate: Annotated[float, typer.Option("--max-rate", min=0.0, max=1.0, help="A feature whose share of disagreeing rows passes this "
                                                                                 "is skewed (exit 1).")] = 0.01,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
) -> None:
    """Recompute offline, as of each logged request's time, the features the deployment was served, and count the rows
    where they disagree (exit 1 when a feature's share passes --max-rate)."""
    import time

    import orjson

    from mloop.errors import InvalidInput
    from mloop.features._definitions import FeatureRegistry
    from mloop.features._materialize import parse_time
    from mloop.features._skew import skew_check
    from mloop.monitoring import LogReader

    start = parse_time(since, "--since") / 1e9 if since is not None else time.time() - 86_400
    ws = open_workspace()
    service = ws.store.deployments.get(deployment).serving.feature_service
    if service is None:
        raise InvalidInput(f"Deployment {deployment!r} fills in no feature service (`mloop deploy ... --feature-service S`).", field="deployment")
    logged = LogReader(ws.logs_dir).predictions(deployment, since=start)
    report = skew_check(FeatureRegistry(ws.store), deployment, service, logged.tail(limit), tolerance=tolerance, max_rate=max_rate)
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
    else:
        table = Table(title=f"{deployment}: {report.rows:,} logged rows against feature service {service} offline (as of known time)")
        for col in ("feature", "rows", "disagree", "share", "online only", "offline only", "largest |diff|"):
            table.add_column(col)
        for f in report.features:
            table.add_row(f.feature, f"{f.compared:,}", f"{f.mismatched:,}", f"{f.rate:.2%}", str(f.only_online), str(f.only_offline),
                          "—" if f.max_abs_diff is None else f"{f.max_abs_diff:.3g}")
        console.print(table)
        for example in report.examples:
            console.print(f"  e.g. {example}")
        console.print(f"skewed: {', '.join(report.skewed)}" if report.skewed else f"no feature disagrees on more than {max_rate:.2%} of rows")
    if report.skewed:
        raise SystemExit(1)
