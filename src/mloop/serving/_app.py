"""The HTTP app: MLflow scoring, Open Inference Protocol v2, feedback, statistics, health and Prometheus metrics."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mloop import __version__
from mloop.errors import MloopError
from mloop.monitoring import MonitorMetrics, MonitorScheduler, PredictionLog, sink_for
from mloop.serving._fastpath import FastPath
from mloop.serving._hub import ModelHub
from mloop.serving._inference import Inference, Reply, error_reply, json_reply, read_body
from mloop.serving._metrics import ServingMetrics
from mloop.serving._stats import StatsBook
from mloop.workspace import Workspace

log = logging.getLogger("mloop.serving")

DRAINING = threading.Event()  # set by the server on SIGTERM: readiness answers 503 from then on


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


def _json(body: Any, status: int = 200) -> Response:
    return _response(json_reply(body, status))


def _error(status: int, message: str, field: str | None = None) -> Response:
    return _response(error_reply(status, message, field))


def create_app(
    workspace: Workspace,
    *,
    log_flush_interval: float = 1.0,
    poll_interval: float = 0.5,
    fast_path: bool = True,
    monitor_interval: float | None = None,
) -> FastAPI | FastPath:
    """An ASGI app serving every deployment of ``workspace``. With ``fast_path`` (the default) the hot POST
    endpoints are answered by an outermost ASGI layer that calls the same code as the FastAPI routes without
    the framework's middleware and routing (~60 µs less per request); the rest goes to FastAPI.

    The workspace's monitors run on a scheduler thread every ``monitor_interval`` seconds (default
    ``MLOOP_MONITOR_INTERVAL``, 10 s; 0 turns it off); of several server processes one holds the lease."""
    metrics = ServingMetrics()
    stats = StatsBook(
        on_batch=lambda dep, version, rows: metrics.batch_size.labels(dep, str(version)).observe(rows),
        on_fallback=lambda dep, version: metrics.fallbacks.labels(dep, str(version)).inc(),
    )
    hub = ModelHub(workspace, poll_interval=poll_interval, stats=stats)
    sink = sink_for(workspace.settings.log_transport, workspace.logs_dir)
    predictions = PredictionLog(workspace.logs_dir, flush_interval=log_flush_interval, sink=sink)
    inference = Inference(hub, predictions, metrics)
    interval = workspace.settings.monitor_interval if monitor_interval is None else monitor_interval
    scheduler = MonitorScheduler(workspace.monitor_runner(MonitorMetrics(metrics.registry)), interval=interval) if interval > 0 else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(hub.start)
        # Models and libraries are loaded: move them out of the garbage collector's sight, so that
        # collections (a source of tail latency) only walk what requests allocate.
        gc.collect()
        gc.freeze()
        predictions.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            app.state.draining = True
            if scheduler is not None:
                await run_in_threadpool(scheduler.stop)
            await run_in_threadpool(hub.stop)
            await run_in_threadpool(predictions.close)

    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan)
    app.state.hub = hub
    app.state.predictions = predictions
    app.state.scheduler = scheduler
    app.state.draining = False

    @app.exception_handler(MloopError)
    async def _mloop_error(request: Request, exc: MloopError) -> Response:
        return _response(inference.failure(exc, request.path_params.get("name", "")))

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
                "revision": served.revision,
                "rollout": {
                    "baseline_version": served.baseline.version,
                    "candidate_version": served.candidate.version if served.candidate else None,
                    "candidate_percent": served.candidate_percent,
                },
                "serving": served.config.to_dict(),
                "queue_depth": {str(sv.version): sv.batcher.pending for sv in served.versions()},
                "versions": hub.stats.deployment(name),
            }
        )

    async def _body(request: Request) -> bytes:
        return await read_body(request.stream(), request.headers.get("content-length"))

    @app.post("/v2/models/{name}/infer")
    async def infer_v2(name: str, request: Request) -> Response:
        """Open Inference Protocol v2: one named tensor per input column; outputs, ``model_version`` and ``id``."""
        return _response(await inference.v2(name, await _body(request), request.headers))

    # -- MLflow scoring ------------------------------------------------------------------------

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        """MLflow scoring for the only deployment: ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``."""
        return _response(await inference.mlflow(None, await _body(request), request.headers))

    @app.post("/models/{name}/invocations")
    async def model_invocations(name: str, request: Request) -> Response:
        """MLflow scoring for deployment ``name``."""
        return _response(await inference.mlflow(name, await _body(request), request.headers))

    # -- feedback ------------------------------------------------------------------------------

    @app.post("/v2/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        """Labels for an answered request: ``{"request_id": ..., "labels": [one per row]}``."""
        return _response(await inference.feedback(name, await _body(request), request.headers))

    return FastPath(app, inference) if fast_path else app
