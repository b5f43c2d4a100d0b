"""The HTTP app: MLflow scoring, Open Inference Protocol v2, feedback, health and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mloop import __version__
from mloop.errors import InvalidInput, MloopError, PayloadTooLarge
from mloop.monitoring import PredictionLog
from mloop.serving._codec import mlflow_columns, typed_frame, v2_columns, v2_datatype
from mloop.serving._hub import ModelHub, Served
from mloop.serving._metrics import ServingMetrics
from mloop.workspace import Workspace

log = logging.getLogger("mloop.serving")

MAX_BODY_BYTES = 16 * 1024 * 1024


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def _json_body(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Body of {length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes.")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Body exceeds the limit of {MAX_BODY_BYTES} bytes.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.", field="body") from exc


def create_app(workspace: Workspace, *, log_flush_interval: float = 1.0, poll_interval: float = 0.5) -> FastAPI:
    """An ASGI app serving every deployment of ``workspace``."""
    hub = ModelHub(workspace, poll_interval=poll_interval)
    predictions = PredictionLog(workspace.logs_dir, flush_interval=log_flush_interval)
    metrics = ServingMetrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(hub.start)
        predictions.start()
        try:
            yield
        finally:
            hub.stop()
            await run_in_threadpool(predictions.close)

    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan)
    app.state.hub = hub
    app.state.predictions = predictions

    @app.exception_handler(MloopError)
    async def _mloop_error(_request: Request, exc: MloopError) -> JSONResponse:
        return _error(exc.status_code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"Invalid request: {first.get('msg', 'bad input')} at {field!r}.", field or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, f"Internal error ({type(exc).__name__}); see the server log.")

    async def _infer(served: Served, columns: dict[str, list[Any]], request_id: str, protocol: str) -> tuple[Any, np.ndarray, float]:
        model, _arm = served.pick(request_id)
        start = time.perf_counter()
        frame = typed_frame(columns, model.inputs)
        output = await run_in_threadpool(model.predict, frame)
        elapsed = time.perf_counter() - start
        version = str(model.version)
        metrics.requests.labels(served.name, version, protocol, "200").inc()
        metrics.rows.labels(served.name, version).inc(len(frame))
        metrics.latency.labels(served.name, version).observe(elapsed)
        predictions.log_predictions(served.name, model.version, request_id, time.time(), frame, model.scores(output), elapsed * 1000)
        return model, output, elapsed

    def _request_id(request: Request, given: str | None = None) -> str:
        rid = given or request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(rid) > 128:
            raise InvalidInput("The request id must be at most 128 characters.", field="id")
        return rid

    # -- health --------------------------------------------------------------------------------

    @app.get("/health/live")
    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/health/ready")
    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if not hub.ready:
            return _error(503, "Models are still loading.")
        return JSONResponse({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "mloop", "version": __version__, "extensions": ["mlflow_scoring", "feedback"]}

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- Open Inference Protocol v2 ------------------------------------------------------------

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> dict[str, Any]:
        served = hub.get(name)
        model = served.baseline
        versions = [str(model.version)] + ([str(served.candidate.version)] if served.candidate else [])
        return {
            "name": name,
            "versions": versions,
            "platform": f"mloop-{model.flavour}",
            "inputs": [
                {"name": c.name, "datatype": "BYTES" if c.type == "string" else "FP64", "shape": [-1]} for c in model.inputs
            ],
            "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, -1]}],
        }

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, Any]:
        hub.get(name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer_v2(name: str, request: Request) -> JSONResponse:
        served = hub.get(name)
        body = await _json_body(request)
        columns, given_id = v2_columns(body)
        request_id = _request_id(request, given_id)
        model, output, _ = await _infer(served, columns, request_id, "v2")
        out = np.asarray(output)
        return JSONResponse(
            {
                "model_name": name,
                "model_version": str(model.version),
                "id": request_id,
                "outputs": [{"name": "predict", "shape": list(out.shape), "datatype": v2_datatype(out), "data": out.ravel().tolist()}],
            },
            headers={"X-Model-Version": str(model.version), "X-Request-Id": request_id},
        )

    # -- MLflow scoring ------------------------------------------------------------------------

    async def _invocations(served: Served, request: Request) -> JSONResponse:
        body = await _json_body(request)
        columns = mlflow_columns(body)
        request_id = _request_id(request)
        model, output, _ = await _infer(served, columns, request_id, "mlflow")
        return JSONResponse(
            {"predictions": np.asarray(output).tolist()},
            headers={"X-Model-Version": str(model.version), "X-Request-Id": request_id},
        )

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        names = hub.names()
        if len(names) != 1:
            raise InvalidInput(
                f"/invocations needs exactly one deployment, this server has {names}; use /models/<name>/invocations.",
                field="path",
            )
        return await _invocations(hub.get(names[0]), request)

    @app.post("/models/{name}/invocations")
    async def model_invocations(name: str, request: Request) -> JSONResponse:
        return await _invocations(hub.get(name), request)

    # -- feedback ------------------------------------------------------------------------------

    @app.post("/v2/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> dict[str, Any]:
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
                raise InvalidInput(f"labels[{i}] must be a finite number, got {label!r}.", field="labels")
        predictions.log_feedback(name, request_id, [float(v) for v in labels], time.time())
        metrics.feedback.labels(name).inc(len(labels))
        return {"accepted": len(labels)}

    return app
