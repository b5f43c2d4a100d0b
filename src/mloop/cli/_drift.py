"""``mloop drift report``: data drift between two files, as self-contained HTML or one JSON object."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mloop.cli._common import app, console, key_values
from mloop.errors import InvalidInput

drift_app = typer.Typer(help="Data drift between two tables.", no_args_is_help=True)
app.add_typer(drift_app, name="drift")


@drift_app.command("report")
def drift_report(
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference table (Parquet, CSV or Arrow).")],
    current: Annotated[Path, typer.Option("--current", "-c", help="Current table (Parquet, CSV or Arrow).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write a self-contained HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
    alpha: Annotated[float, typer.Option(help="Significance level after correction.")] = 0.05,
    correction: Annotated[str, typer.Option(help="Multiple-testing correction: bh, bonferroni or none.")] = "bh",
    floor: Annotated[
        list[str] | None,
        typer.Option("--floor", help="MEASURE=VALUE: the smallest effect that counts as drift (defaults: wasserstein_sd=0.1 σ, total_variation=0.075)."),
    ] = None,
    drift_share: Annotated[float, typer.Option(help="Share of drifted features that makes the dataset drift.")] = 0.3,
    prediction: Annotated[str | None, typer.Option(help="Column of model outputs, tested on its own (prediction drift).")] = None,
    test: Annotated[
        list[str] | None,
        typer.Option("--test", help="FEATURE=TEST to override the automatic choice (ks, chi_square, psi, jensen_shannon, wasserstein)."),
    ] = None,
) -> None:
    """Compare two tables feature by feature (test chosen by dtype and size, corrected, with an effect-size floor)."""
    import json

    from mloop._memory import release_freed_memory
    from mloop.data import read_columns
    from mloop.monitoring import drift_detector, drift_summary, render_drift_report, write_html
    from mloop.monitoring._drift_report import check_current

    tests = dict(key_values(test, "--test", "FEATURE=TEST"))
    floors: dict[str, float] = {}
    for measure, value in key_values(floor, "--floor", "MEASURE=VALUE"):
        try:
            floors[measure] = float(value)
        except ValueError:
            raise InvalidInput(f"--floor {measure}= takes a number, got {value!r}.", field="--floor") from None
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())  # a one-shot process: malloc gives freed columns back, mimalloc keeps them
    ref = read_columns(reference)
    fitted = drift_detector(ref, alpha=alpha, correction=correction, floors=floors, drift_share=drift_share,
                            prediction=prediction, tests=tests)
    names = list(ref)
    del ref  # the fitted tests hold what they need: one table in memory at a time
    release_freed_memory()
    cur = read_columns(current)
    check_current(names, cur)
    report = fitted.score(cur)
    if output is None and not as_json:
        output = Path("drift-report.html")
    if output is not None:
        write_html(output, render_drift_report(None, cur, report, fitted=fitted, title=f"Data drift: {current.name} vs {reference.name}"))
        if not as_json:
            verdict = "drift" if report.drift else "no drift"
            console.print(f"{verdict}: {len(report.drifted())} of {len(report.features)} features drifted; report: [bold]{output}[/bold]")
    if as_json:
        sys.stdout.write(json.dumps(drift_summary(report)) + "\n")


