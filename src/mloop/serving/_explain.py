"""``POST /v2/models/{name}/explain``: per-row attributions from the version that would answer the same request,
with inference's request formats and validation. Explaining runs on its own worker thread, never on the event
loop; the explainer is built on a version's first explain request and kept with the loaded version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mloop.errors import InvalidInput, MloopError
from mloop.serving._codec import mlflow_columns, v2_binary_body, v2_columns
from mloop.serving._hub import ModelHub
from mloop.serving._inference import parse_json
from mloop.serving._metrics import ServingMetrics
from mloop.serving._openapi import EXPLAIN_BODY
from mloop.serving._replies import Reply, failure, json_reply
from mloop.serving._routes import Call, Route
from mloop.serving._runtime import block_frame

METHODS = ("auto", "tree", "permutation", "kernel", "lime", "integrated_gradients")  # mloop.explain's (not imported here: the route loads lazily)
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances")
MAX_TREE_ROWS = 10_000  # exact TreeSHAP is linear in rows
MAX_SAMPLED_ROWS = 100  # sampling explainers call the model thousands of times per row
MAX_GRADIENT_ROWS = 1_000  # integrated gradients: 50 forward and backward passes a row, batched


def _request(body: bytes, headers: Mapping[str, str]) -> tuple[dict[str, list[Any]], str | None, str]:
    """Columns, the request id and the method asked for, from an Open Inference Protocol body (JSON or binary) or
    one of MLflow's scoring formats."""
    header_length = headers.get("inference-header-content-length")
    data = parse_json(body) if header_length is None else v2_binary_body(body, header_length)
    if isinstance(data, dict) and any(k in data for k in MLFLOW_KEYS):
        params = data.get("params", {})
        columns = mlflow_columns(data)
        given = None
    else:
        params = data.get("parameters", {}) if isinstance(data, dict) else {}
        columns, given = v2_columns(data)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' (or MLflow's 'params') must be an object.", field="parameters")
    method = params.get("method", "auto")
    if method not in METHODS:
        raise InvalidInput(f"parameters.method must be one of {', '.join(METHODS)}, got {str(method)[:40]!r}.", field="parameters.method")
    return columns, given, str(method)


class ExplainRoutes:
    """The explain route over a ``ModelHub``: one worker thread computes every explanation, in request order."""

    def __init__(self, hub: ModelHub, metrics: ServingMetrics) -> None:
        self.hub = hub
        self.metrics = metrics
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="mloop-explain")

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/v2/models/{name}/explain", "predictor", self._explain, fast=True, body=EXPLAIN_BODY, binary=True,
                  summary="Per-row attributions on the model's input columns: base_value + Σ attributions = output, on the scale "
                          "'output.scale' names (a binary classifier's positive-class log-odds for boosted trees, its probability "
                          "for forests and sampled explainers). Same bodies as infer (or MLflow's); parameters.method: "
                          "auto | tree | permutation | kernel | lime (LIME's attributions add up to its local prediction, "
                          "given as local_prediction, not to the model's output) | integrated_gradients (a TabularNet: "
                          "Captum's convergence delta per row as convergence_delta)."),
        ]

    async def _explain(self, call: Call) -> Reply:
        name = call.params["name"]
        try:
            return await self.explain(name, call.body, call.headers)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            self.metrics.errors.labels(name, str(exc.status_code if isinstance(exc, MloopError) else 500)).inc()
            return failure(exc)

    async def explain(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        start = time.perf_counter()
        served = self.hub.get(name)
        columns, given_id, method = _request(body, headers)
        request_id = given_id or headers.get("x-request-id") or ""
        if len(request_id) > 128:
            raise InvalidInput("The request id must be at most 128 characters.", field="id")
        features = served.features
        joined = features.fill(columns) if features is not None else None
        sv, _, _ = served.pick(headers.get("x-routing-key") or request_id or "explain")
        block = sv.runtime.prepare(columns if features is None or joined is None else features.inputs(joined, sv.columns))
        if sv.model is None:
            raise InvalidInput(f"Deployment {name!r} serves a version without its model in memory; it cannot be explained.", field="name")
        frame = block_frame(block, sv.runtime.inputs)
        model = sv.model
        result = await asyncio.get_running_loop().run_in_executor(self._worker, self._compute, model, frame, method)
        version = str(sv.version)
        self.metrics.explained.labels(served.name, version, result.method).inc(len(frame))
        self.metrics.explain_latency.labels(served.name, version).observe(time.perf_counter() - start)
        from mloop.explain import OUTPUT_SCALES

        reply: dict[str, Any] = {
            "model_name": name,
            "model_version": str(sv.version),
            "method": result.method,
            "output": {"scale": result.output, "meaning": OUTPUT_SCALES.get(result.output, result.output)},
            "explanations": result.rows(),
        }
        if request_id:
            reply["id"] = request_id
        return json_reply(reply, headers={"x-model-version": str(sv.version)})

    @staticmethod
    def _compute(model: Any, frame: Any, method: str) -> Any:
        from mloop.explain import explainer_of

        explainer = explainer_of(model, method=method)
        limit = MAX_TREE_ROWS if explainer.method in ("tree-shap", "lightgbm", "xgboost") else \
            MAX_GRADIENT_ROWS if explainer.method == "integrated-gradients" else MAX_SAMPLED_ROWS
        if len(frame) > limit:
            raise InvalidInput(f"At most {limit} rows can be explained per request with method {explainer.method}; got {len(frame)}.",
                               field="inputs")
        return explainer.explain(frame)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
