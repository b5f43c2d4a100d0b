"""The inference endpoints' logic, independent of the web framework: bytes and headers in, a ``Reply`` out.

Both the FastAPI routes (which also document the API) and the ASGI fast path call these, so there is
one implementation of each endpoint.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mloop.errors import InvalidInput, MloopError, PayloadTooLarge
from mloop.monitoring import PredictionLog
from mloop.serving._batcher import QueueFull
from mloop.serving._codec import mlflow_columns, v2_binary_body, v2_columns, v2_datatype
from mloop.serving._hub import ModelHub, Served, ServedVersion
from mloop.serving._metrics import ServingMetrics

log = logging.getLogger("mloop.serving")

MAX_BODY_BYTES = 16 * 1024 * 1024
JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), {**JSON_HEADERS, **(headers or {})})


def error_reply(status: int, message: str, field_name: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    body: dict[str, Any] = {"error": message}
    if field_name is not None:
        body["field"] = field_name
    return json_reply(body, status, headers)


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None) -> bytes:
    """The request body, refused with 413 before more than ``MAX_BODY_BYTES`` are buffered."""
    if content_length is not None and content_length.isdigit() and int(content_length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Body of {content_length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes.")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Body exceeds the limit of {MAX_BODY_BYTES} bytes.")
        parts.append(chunk)
    return b"".join(parts)


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

    def failure(self, exc: Exception, deployment: str = "") -> Reply:
        """The reply for an error: an ``MloopError`` becomes its status with a message naming the field."""
        if isinstance(exc, MloopError):
            self.metrics.errors.labels(deployment, str(exc.status_code)).inc()
            headers = {"retry-after": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
            return error_reply(exc.status_code, exc.message, exc.field, headers)
        log.exception("unexpected error", exc_info=exc)
        self.metrics.errors.labels(deployment, "500").inc()
        return error_reply(500, f"Internal error ({type(exc).__name__}); see the server log.")

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

    async def _score(self, served: Served, columns: dict[str, list[Any]], request_id: str, protocol: str, headers: Mapping[str, str]) -> tuple[ServedVersion, np.ndarray]:
        start = time.perf_counter()
        sv, _arm = served.pick(request_id)
        block = sv.runtime.prepare(columns)
        rows = len(block)
        output, queue_s, compute_s = await sv.batcher.submit(block, rows, timeout_ms=self._timeout_ms(headers))
        total = time.perf_counter() - start
        sv.stats.request_done(total * 1000, queue_s * 1000, compute_s * 1000, rows)
        self.metrics.bound(served.name, sv.version).observe(protocol, rows, total, queue_s, compute_s)
        out = np.asarray(output)
        scores = out[:, -1] if out.ndim == 2 else out.reshape(rows, -1)[:, -1]
        self.predictions.log_predictions(
            served.name, sv.version, request_id, time.time(), block, scores, total * 1000, columns=sv.columns
        )
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
