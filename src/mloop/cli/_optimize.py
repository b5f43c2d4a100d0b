"""``mloop models optimize``: an INT8, pruned or distilled variant of a registered model, gated and registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mloop.cli._common import console, open_workspace
from mloop.cli._models import models_app


@models_app.command("optimize")
def models_optimize(
    model: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION (default alias champion).")],
    method: Annotated[str, typer.Option("--method", "-m", help="int8-dynamic, int8-static, prune or distill.")],
    train: Annotated[Path, typer.Option(help="Training rows (Parquet, CSV…): INT8 calibration, fine-tuning, the student's lessons.")],
    test: Annotated[Path, typer.Option(help="Held-out labelled rows the accuracy gate compares variant and parent on.")],
    target: Annotated[str, typer.Option(help="The label column.")],
    into: Annotated[str | None, typer.Option(help="Register under this name (default: the parent's).")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the variant when it passes.")] = None,
    max_loss: Annotated[float, typer.Option(help="Accuracy the variant may lose, in points (1.0 = one point).")] = 1.0,
    amount: Annotated[float, typer.Option(help="prune: the share of hidden units removed.")] = 0.5,
    hidden: Annotated[str | None, typer.Option(help="distill: the student's hidden sizes, e.g. 64,32.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Make an optimised variant, hold it to the accuracy gate against its parent, register it if it passes (exit 1 if not)."""
    from mloop.data import read_table
    from mloop.errors import InvalidInput
    from mloop.pipelines._score import parse_ref
    from mloop.pipelines._variants import make_variant

    name, ref = parse_ref(model)
    sizes = None
    if hidden is not None:
        try:
            sizes = [int(h) for h in hidden.split(",")]
        except ValueError:
            raise InvalidInput(f"--hidden takes sizes separated by commas (64,32), got {hidden!r}.", field="--hidden") from None
    ws = open_workspace()
    try:
        with console.status(f"making the {method} variant of {name}…"):
            variant = make_variant(ws, name, ref, method, train=read_table(train), test=read_table(test), target=target, max_loss=max_loss / 100,
                                   into=into, alias=alias, amount=amount, hidden=sizes)
    finally:
        ws.close()
    if as_json:
        print(json.dumps({"method": variant.method, "parent": variant.parent, "name": variant.name, "version": variant.version,
                          "run_id": variant.run_id, "size_bytes": variant.size_bytes, "parent_size_bytes": variant.parent_size_bytes,
                          "gate": variant.gate.to_dict()}))
    else:
        console.print(variant.describe(), markup=False, highlight=False)
    if variant.version is None:
        raise SystemExit(1)  # the gate refused it: the operation did not do what was asked
