"""Scoring a few rows with what a deployment serves, and explaining them: for people and agents checking a model by
hand (production traffic uses the server's fast inference routes, which log every prediction; these do not)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Literal

from pydantic import Field

from mloop.errors import InvalidInput
from mloop.operations._core import Context, DeploymentName, Http, Input, Operation, Output, operation

_CACHE: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
_LOCK = threading.Lock()
_KEEP = 4  # loaded versions kept per process (a model and its explainer can be large)


def _loaded(ctx: Context, model: str, version: int) -> Any:
    """The registered version, loaded and verified once per process (a few kept, least recently used dropped)."""
    key = (str(ctx.workspace.root), model, version)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    loaded = ctx.workspace.registry.load(model, version)
    with _LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > _KEEP:
            _CACHE.popitem(last=False)
    return loaded


class Score(Input):
    name: DeploymentName = Field(description="The deployment whose model scores the rows.")
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=100, description="Rows as objects keyed by input column (1-100).")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="A version of its model (default: the one it serves).")
    explain: bool = Field(default=False, description="Also attribute each row's output to its input columns.")
    method: Literal["auto", "tree", "permutation", "kernel", "lime", "integrated_gradients"] = Field(
        default="auto", description="The explanation method (auto: exact TreeSHAP for trees, else SHAP's permutation explainer).")


class Scored(Output):
    deployment: str
    model: str
    version: int
    predictions: list[Any] = Field(description="One per row: the class probabilities, or the predicted value.")
    explanations: list[dict[str, Any]] | None = Field(default=None, description="One per row: base value, output, attribution per column.")
    explained_output: str | None = Field(default=None, description="What the attributions add up to (log-odds, probability, value).")


def _check_types(rows: list[dict[str, Any]], schema: list[Any], allow_missing: bool) -> None:
    """Each value of the type its column's signature says, as the inference routes require (``rows[i].column`` named)."""
    from mloop.serving._codec import check_value

    kinds = {spec.name: spec.type for spec in schema}
    for i, row in enumerate(rows):
        for column, value in row.items():
            if column in kinds:
                try:
                    check_value(column, value, kinds[column], allow_missing)
                except InvalidInput as exc:
                    raise InvalidInput(f"rows[{i}].{column}: {exc.message}", field=f"rows[{i}].{column}") from None


def _score(ctx: Context, body: Score) -> Scored:
    import numpy as np

    from mloop.explain import as_frame, explain

    dep = ctx.workspace.store.deployments.get(body.name)
    version = body.version or ctx.workspace.registry.resolve(dep.model_name, dep.alias).version
    loaded = _loaded(ctx, dep.model_name, int(version))
    columns = list(loaded.feature_names)
    missing = sorted({c for c in columns if any(c not in r for r in body.rows)})
    unknown = sorted({k for r in body.rows for k in r if columns and k not in columns})
    if missing or unknown:
        what = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else "") if x)
        raise InvalidInput(f"rows: {what} (the model's inputs: {', '.join(columns)}).", field="rows")
    _check_types(body.rows, loaded.inputs, dep.serving.allow_missing)
    frame = as_frame(body.rows, columns or None)[columns] if columns else as_frame(body.rows)
    try:
        output = np.asarray(loaded.predict(frame))
    except (TypeError, ValueError) as exc:
        if loaded.inputs:  # typed against the signature above: a failure now is the model's, not the rows'
            raise
        raise InvalidInput(f"rows: the model (it has no signature) could not score them ({type(exc).__name__}: {str(exc)[:200]}).",
                           field="rows") from None
    result = Scored(deployment=body.name, model=dep.model_name, version=int(version), predictions=output.tolist())
    if body.explain:
        explanations = explain(loaded, frame, background=loaded.background, method=body.method)
        result.explanations, result.explained_output = explanations.rows(), explanations.output
    return result


SCORE = operation(Operation(
    "predict", "Score up to 100 rows with a deployment's model (the version it serves, or another), optionally explaining each row; "
    "nothing is logged.", "predictor", Score, Scored, _score, http=Http("POST", "/api/deployments/{name}/predict"), tags=("predictions",),
))
