"""The HTTP app: MLflow scoring, Open Inference Protocol v2, feedback, statistics, health and Prometheus metrics."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mloop import __version__
from mloop.errors import InvalidInput, MloopError, PayloadTooLarge
from mloop.monitoring import PredictionLog
from mloop.serving._batcher import QueueFull
from mloop.serving._codec import mlflow_columns, v2_columns, v2_datatype
from mloop.serving._hub import ModelHub, Served, ServedVersion
from mloop.serving._metrics import ServingMetrics
from mloop.serving._stats import StatsBook
from mloop.workspace import Workspace

log = logging.getLogger("mloop.serving")

MAX_BODY_BYTES = 16 * 1024 * 1024
DRAINING = threading.Event()  # set by the server on SIGTERM: readiness answers 503 from then on
_JSON = "application/json"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, media_type=_JSON, headers=headers)


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return _json(body, status, headers)


async def _json_body(request: Request) -> Any:
    """The parsed body; refused with 413 before buffering more than ``MAX_BODY_BYTES``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Body of {length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Body exceeds the limit of {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON (NaN and Infinity are not JSON): {exc}.", field="body") from exc


def create_app(workspace: Workspace, *, log_flush_interval: float = 1.0, poll_interval: float = 0.5) -> FastAPI:
    """An ASGI app serving every deployment of ``workspace``."""
    metrics = ServingMetrics()
    stats = StatsBook(on_batch=lambda dep, version, rows: metrics.batch_size.labels(dep, str(version)).observe(rows))
    hub = ModelHub(workspace, poll_interval=poll_interval, stats=stats)
    predictions = PredictionLog(workspace.logs_dir, flush_interval=log_flush_interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(hub.start)
        predictions.start()
        try:
            yield
        finally:
            app.state.draining = True
            await run_in_threadpool(hub.stop)
            await run_in_threadpool(predictions.close)

    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan)
    app.state.hub = hub
    app.state.predictions = predictions
    app.state.draining = False

    @app.exception_handler(MloopError)
    async def _mloop_error(request: Request, exc: MloopError) -> Response:
        name = request.path_params.get("name", "")
        metrics.errors.labels(name, str(exc.status_code)).inc()
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFull) else None
        return _error(exc.status_code, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"Invalid request: {first.get('msg', 'bad input')} at {field!r}.", field or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return _error(500, f"Internal error ({type(exc).__name__}); see the server log.")

    def _timeout_ms(request: Request) -> float | None:
        raw = request.headers.get("x-request-timeout-ms")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= 3_600_000:
            raise InvalidInput(f"X-Request-Timeout-Ms must be a number of milliseconds in (0, 3600000], got {raw[:40]!r}.", field="X-Request-Timeout-Ms")
        return value

    async def _infer(served: Served, columns: dict[str, list[Any]], request_id: str, protocol: str, request: Request) -> tuple[ServedVersion, np.ndarray]:
        start = time.perf_counter()
        sv, _arm = served.pick(request_id)
        block = sv.runtime.prepare(columns)
        rows = len(block)
        output, queue_s, compute_s = await sv.batcher.submit(block, rows, timeout_ms=_timeout_ms(request))
        total = time.perf_counter() - start
        sv.stats.request_done(total * 1000, queue_s * 1000, compute_s * 1000, rows)
        metrics.bound(served.name, sv.version).observe(protocol, rows, total, queue_s, compute_s)
        out = np.asarray(output)
        scores = out[:, -1] if out.ndim == 2 else out.reshape(rows, -1)[:, -1]
        predictions.log_predictions(
            served.name, sv.version, request_id, time.time(), block, scores, total * 1000,
            columns=[c.name for c in sv.runtime.inputs],
        )
        return sv, out

    def _request_id(request: Request, given: str | None = None) -> str:
        rid = given or request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(rid) > 128:
            raise InvalidInput("The request id must be at most 128 characters.", field="id")
        return rid

    # -- health --------------------------------------------------------------------------------

    @app.get("/health/live")
    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/health/ready")
    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if app.state.draining or DRAINING.is_set():
            return _error(503, "The server is shutting down.")
        if not hub.ready:
            return _error(503, "Models are still loading.")
        return _json({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json({"name": "mloop", "version": __version__, "extensions": ["mlflow_scoring", "feedback", "stats"]})

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- Open Inference Protocol v2 ------------------------------------------------------------

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Response:
        served = hub.get(name)
        runtime = served.baseline.runtime
        return _json(
            {
                "name": name,
                "versions": [str(sv.version) for sv in served.versions()],
                "platform": f"mloop-{runtime.kind}",
                "inputs": [
                    {"name": c.name, "datatype": "BYTES" if c.type == "string" else ("BOOL" if c.type == "boolean" else "FP64"), "shape": [-1]}
                    for c in runtime.inputs
                ],
                "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, -1]}],
            }
        )

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        hub.get(name)
        return _json({"name": name, "ready": True})

    @app.get("/v2/models/{name}/stats")
    async def model_stats(name: str) -> Response:
        served = hub.get(name)
        return _json(
            {
                "name": name,
                "serving": served.config.to_dict(),
                "queue_depth": {str(sv.version): sv.batcher.pending for sv in served.versions()},
                "versions": hub.stats.deployment(name),
            }
        )

    @app.post("/v2/models/{name}/infer")
    async def infer_v2(name: str, request: Request) -> Response:
        served = hub.get(name)
        body = await _json_body(request)
        columns, given_id = v2_columns(body)
        request_id = _request_id(request, given_id)
        sv, out = await _infer(served, columns, request_id, "v2", request)
        return _json(
            {
                "model_name": name,
                "model_version": str(sv.version),
                "id": request_id,
                "outputs": [{"name": "predict", "shape": list(out.shape), "datatype": v2_datatype(out), "data": out.ravel()}],
            },
            headers={"X-Model-Version": str(sv.version), "X-Request-Id": request_id},
        )

    # -- MLflow scoring ------------------------------------------------------------------------

    async def _invocations(served: Served, request: Request) -> Response:
        body = await _json_body(request)
        columns = mlflow_columns(body)
        request_id = _request_id(request)
        sv, out = await _infer(served, columns, request_id, "mlflow", request)
        return _json({"predictions": out}, headers={"X-Model-Version": str(sv.version), "X-Request-Id": request_id})

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        names = hub.names()
        if len(names) != 1:
            raise InvalidInput(
                f"/invocations needs exactly one deployment, this server has {names}; use /models/<name>/invocations.",
                field="path",
            )
        return await _invocations(hub.get(names[0]), request)

    @app.post("/models/{name}/invocations")
    async def model_invocations(name: str, request: Request) -> Response:
        return await _invocations(hub.get(name), request)

    # -- feedback ------------------------------------------------------------------------------

    @app.post("/v2/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        hub.get(name)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise InvalidInput("The body must be an object with 'request_id' and 'labels'.", field="body")
        request_id, labels = body.get("request_id"), body.get("labels")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
            raise InvalidInput("'request_id' must be the id of an answered request (1-128 characters).", field="request_id")
        if not isinstance(labels, list) or not labels:
            raise InvalidInput("'labels' must be a non-empty list with one number per row of the request.", field="labels")
        for i, label in enumerate(labels):
            if isinstance(label, bool) or not isinstance(label, (int, float)) or not np.isfinite(label):
                raise InvalidInput(f"labels[{i}] must be a finite number, got {str(label)[:40]!r}.", field="labels")
        predictions.log_feedback(name, request_id, [float(v) for v in labels], time.time())
        metrics.feedback.labels(name).inc(len(labels))
        return _json({"accepted": len(labels)})

    return app
