"""The inference routes — MLflow scoring, Open Inference Protocol v2 ``infer``, feedback — independent of the
web framework: a ``Call`` in, a ``Reply`` out. They are on the fast path; the FastAPI routes derived from the
same table call the same handlers (and document them in the OpenAPI document).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from mloop.errors import InvalidInput, MloopError
from mloop.monitoring import PredictionLog
from mloop.serving._codec import mlflow_columns, v2_binary_body, v2_columns, v2_datatype
from mloop.serving._hub import ModelHub, Served, ServedVersion
from mloop.serving._metrics import ServingMetrics
from mloop.serving._openapi import FEEDBACK_BODY, MLFLOW_BODY, V2_BODY
from mloop.serving._replies import Reply, failure, json_reply
from mloop.serving._routes import Call, Route


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON (NaN and Infinity are not JSON): {exc}.", field="body") from exc


class Inference:
    """MLflow scoring, v2 ``infer`` and feedback over the models of a ``ModelHub``."""

    def __init__(self, hub: ModelHub, predictions: PredictionLog, metrics: ServingMetrics) -> None:
        self.hub = hub
        self.predictions = predictions
        self.metrics = metrics

    def routes(self) -> list[Route]:
        """The inference routes, all on the fast path."""
        return [
            Route("POST", "/invocations", "predictor", self._invocations, fast=True, body=MLFLOW_BODY,
                  summary="MLflow scoring for the only deployment: dataframe_split, dataframe_records, instances or inputs."),
            Route("POST", "/models/{name}/invocations", "predictor", self._model_invocations, fast=True, body=MLFLOW_BODY,
                  summary="MLflow scoring for deployment name."),
            Route("POST", "/v2/models/{name}/infer", "predictor", self._infer, fast=True, body=V2_BODY, binary=True,
                  summary="Open Inference Protocol v2: one named tensor per input column; outputs, model_version and id."),
            Route("POST", "/v2/models/{name}/feedback", "predictor", self._feedback, fast=True, body=FEEDBACK_BODY,
                  summary='Labels for an answered request: {"request_id": ..., "labels": [one per row]}.'),
        ]

    async def _invocations(self, call: Call) -> Reply:
        return await self.mlflow(None, call.body, call.headers)

    async def _model_invocations(self, call: Call) -> Reply:
        return await self.mlflow(call.params["name"], call.body, call.headers)

    async def _infer(self, call: Call) -> Reply:
        return await self.v2(call.params["name"], call.body, call.headers)

    async def _feedback(self, call: Call) -> Reply:
        return await self.feedback(call.params["name"], call.body, call.headers)

    def failure(self, exc: Exception, deployment: str = "") -> Reply:
        """The reply for an error, counted per deployment and status."""
        self.metrics.errors.labels(deployment, str(exc.status_code if isinstance(exc, MloopError) else 500)).inc()
        return failure(exc)

    @staticmethod
    def _timeout_ms(headers: Mapping[str, str]) -> float | None:
        raw = headers.get("x-request-timeout-ms")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3_600_000:
            raise InvalidInput(
                f"X-Request-Timeout-Ms must be a number of milliseconds in (0, 3600000], got {raw[:40]!r}.", field="X-Request-Timeout-Ms"
            )
        return value

    @staticmethod
    def _request_id(headers: Mapping[str, str], given: str | None = None) -> str:
        rid = given or headers.get("x-request-id") or uuid.uuid4().hex
        if len(rid) > 128:
            raise InvalidInput("The request id must be at most 128 characters.", field="id")
        return rid

    async def _score(
        self, served: Served, columns: dict[str, list[Any]], request_id: str, protocol: str, headers: Mapping[str, str]
    ) -> tuple[ServedVersion, np.ndarray]:
        start = time.perf_counter()
        key = headers.get("x-routing-key") or request_id
        if len(key) > 128:
            raise InvalidInput("X-Routing-Key must be at most 128 characters.", field="X-Routing-Key")
        timeout_ms = self._timeout_ms(headers)  # a bad header is the client's fault, not the arm's
        features = served.features
        joined = features.fill(columns) if features is not None else None
        sv, arm, probability = served.pick(key)
        try:
            block = sv.runtime.prepare(columns if features is None or joined is None else features.inputs(joined, sv.columns))
            rows = len(block)
            output, queue_s, compute_s = await sv.batcher.submit(block, rows, timeout_ms=timeout_ms)
        except Exception as exc:  # the routed version failed this request: an outcome of its arm, then the usual reply
            status = exc.status_code if isinstance(exc, MloopError) else 500
            self.predictions.log_failure(served.name, sv.version, request_id, time.time(), arm=arm, probability=probability, status=status,
                                         error=type(exc).__name__)
            raise
        total = time.perf_counter() - start
        sv.stats.request_done(total * 1000, queue_s * 1000, compute_s * 1000, rows)
        self.metrics.bound(served.name, sv.version).observe(protocol, rows, total, queue_s, compute_s)
        out = np.asarray(output)
        if served.shadow is not None:
            served.shadow.offer(block, rows, out, total * 1000)
        scores = out[:, -1] if out.ndim == 2 else out.reshape(rows, -1)[:, -1]
        if features is None or joined is None:
            self.predictions.log_predictions(
                served.name, sv.version, request_id, time.time(), block, scores, total * 1000, columns=sv.columns, arm=arm, probability=probability
            )
        else:  # the request's keys and fields with the online values joined to them, as the model was given them
            self.predictions.log_predictions(served.name, sv.version, request_id, time.time(), features.logged(joined),
                                             scores, total * 1000, arm=arm, probability=probability)
        return sv, out

    def _single(self) -> Served:
        names = self.hub.names()
        if len(names) != 1:
            raise InvalidInput(
                f"/invocations needs exactly one deployment, this server has {names}; use /models/<name>/invocations.", field="path"
            )
        return self.hub.get(names[0])

    async def mlflow(self, name: str | None, body: bytes, headers: Mapping[str, str]) -> Reply:
        """``POST /invocations`` (``name`` None) and ``POST /models/{name}/invocations``, answered as MLflow does."""
        try:
            served = self._single() if name is None else self.hub.get(name)
            columns = mlflow_columns(parse_json(body))
            request_id = self._request_id(headers)
            sv, out = await self._score(served, columns, request_id, "mlflow", headers)
            return json_reply({"predictions": out}, headers={"x-model-version": str(sv.version), "x-request-id": request_id})
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reply
            return self.failure(exc, name or "")

    async def v2(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """``POST /v2/models/{name}/infer`` (Open Inference Protocol)."""
        try:
            served = self.hub.get(name)
            header_length = headers.get("inference-header-content-length")
            request = parse_json(body) if header_length is None else v2_binary_body(body, header_length)
            columns, given_id = v2_columns(request)
            request_id = self._request_id(headers, given_id)
            sv, out = await self._score(served, columns, request_id, "v2", headers)
            return json_reply(
                {
                    "model_name": name,
                    "model_version": str(sv.version),
                    "id": request_id,
                    "outputs": [{"name": "predict", "shape": list(out.shape), "datatype": v2_datatype(out), "data": out.ravel()}],
                },
                headers={"x-model-version": str(sv.version), "x-request-id": request_id},
            )
        except Exception as exc:  # noqa: BLE001
            return self.failure(exc, name)

    async def feedback(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """``POST /v2/models/{name}/feedback``: labels for the rows of an answered request."""
        try:
            self.hub.get(name)
            data = parse_json(body)
            if not isinstance(data, dict):
                raise InvalidInput("The body must be an object with 'request_id' and 'labels'.", field="body")
            request_id, labels = data.get("request_id"), data.get("labels")
            if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
                raise InvalidInput("'request_id' must be the id of an answered request (1-128 characters).", field="request_id")
            if not isinstance(labels, list) or not labels:
                raise InvalidInput("'labels' must be a non-empty list with one number per row of the request.", field="labels")
            for i, label in enumerate(labels):
                if isinstance(label, bool) or not isinstance(label, (int, float)) or not np.isfinite(label):
                    raise InvalidInput(f"labels[{i}] must be a finite number, got {str(label)[:40]!r}.", field="labels")
            self.predictions.log_feedback(name, request_id, [float(v) for v in labels], time.time())
            self.metrics.feedback.labels(name).inc(len(labels))
            return json_reply({"accepted": len(labels)})
        except Exception as exc:  # noqa: BLE001
            return self.failure(exc, name)
