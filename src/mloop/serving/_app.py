"""The HTTP app: MLflow scoring, Open Inference Protocol v2, feedback, statistics, health and Prometheus metrics."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mloop import __version__
from mloop.errors import MloopError
from mloop.names import NAME_PATTERN
from mloop.monitoring import MonitorMetrics, MonitorScheduler, PredictionLog, sink_for
from mloop.serving._access import AccessControl
from mloop.serving._fastpath import FastPath
from mloop.serving._openapi import ERROR_RESPONSES, FEEDBACK_BODY, MLFLOW_BODY, MONITOR_BODY, V2_BODY, json_body
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
    auth: bool | None = None,
) -> AccessControl:
    """An ASGI app serving every deployment of ``workspace``. With ``fast_path`` (the default) the hot POST
    endpoints are answered by an outermost ASGI layer that calls the same code as the FastAPI routes without
    the framework's middleware and routing (~60 µs less per request); the rest goes to FastAPI.

    The workspace's monitors run on a scheduler thread every ``monitor_interval`` seconds (default
    ``MLOOP_MONITOR_INTERVAL``, 10 s; 0 turns it off); of several server processes one holds the lease.

    ``auth`` (default ``MLOOP_AUTH``, on) puts :class:`AccessControl` in front of everything: the route table in
    ``serving/_access.py`` says which role each route needs; only the health probes are public."""
    metrics = ServingMetrics()
    stats = StatsBook(
        on_batch=lambda dep, version, rows: metrics.batch_size.labels(dep, str(version)).observe(rows),
        on_fallback=lambda dep, version: metrics.fallbacks.labels(dep, str(version)).inc(),
    )
    hub = ModelHub(workspace, poll_interval=poll_interval, stats=stats)
    sink = sink_for(workspace.settings.log_transport, workspace.logs_dir)
    predictions = PredictionLog(workspace.logs_dir, flush_interval=log_flush_interval, sink=sink)
    inference = Inference(hub, predictions, metrics)
    authenticator = workspace.authenticator() if (workspace.settings.auth if auth is None else auth) else None
    interval = workspace.settings.monitor_interval if monitor_interval is None else monitor_interval
    scheduler = MonitorScheduler(workspace.monitor_runner(MonitorMetrics(metrics.registry)), interval=interval) if interval > 0 else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if authenticator is not None:
            await run_in_threadpool(authenticator.refresh)
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

    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan, responses=ERROR_RESPONSES)
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
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Allow must list every method of the path, across all routes (RFC 9110)
            from starlette.routing import Match

            methods: set[str] = set()
            for route in app.routes:
                if route.matches({"type": "http", "path": request.url.path, "method": "GET"})[0] != Match.NONE:
                    methods |= set(getattr(route, "methods", None) or ())
            if methods:
                response.headers["Allow"] = ", ".join(sorted(methods))
        return response

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

    @app.get("/metrics", response_class=PlainTextResponse)
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

    @app.post("/v2/models/{name}/infer", openapi_extra=json_body(V2_BODY, binary=True))
    async def infer_v2(name: str, request: Request) -> Response:
        """Open Inference Protocol v2: one named tensor per input column; outputs, ``model_version`` and ``id``."""
        return _response(await inference.v2(name, await _body(request), request.headers))

    # -- MLflow scoring ------------------------------------------------------------------------

    @app.post("/invocations", openapi_extra=json_body(MLFLOW_BODY))
    async def invocations(request: Request) -> Response:
        """MLflow scoring for the only deployment: ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``."""
        return _response(await inference.mlflow(None, await _body(request), request.headers))

    @app.post("/models/{name}/invocations", openapi_extra=json_body(MLFLOW_BODY))
    async def model_invocations(name: str, request: Request) -> Response:
        """MLflow scoring for deployment ``name``."""
        return _response(await inference.mlflow(name, await _body(request), request.headers))

    # -- feedback ------------------------------------------------------------------------------

    @app.post("/v2/models/{name}/feedback", openapi_extra=json_body(FEEDBACK_BODY))
    async def feedback(name: str, request: Request) -> Response:
        """Labels for an answered request: ``{"request_id": ..., "labels": [one per row]}``."""
        return _response(await inference.feedback(name, await _body(request), request.headers))

    # -- management: who am I, API keys, monitors ---------------------------------------------

    def _who(request: Request) -> str:
        principal = request.scope.get("principal")
        return f"{principal.via}:{principal.subject}" if principal else "anonymous"

    @app.get("/api/whoami")
    async def whoami(request: Request) -> Response:
        principal = request.scope.get("principal")
        if principal is None:
            return _json({"subject": "anonymous", "role": "admin", "via": "no-auth"})
        return _json({"subject": principal.subject, "role": principal.role, "via": principal.via})

    @app.get("/api/keys")
    async def list_keys() -> Response:
        keys = await run_in_threadpool(workspace.store.api_keys.list)
        return _json({"keys": [{"id": k.id, "name": k.name, "role": k.role, "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys]})

    @app.post("/api/keys", status_code=201)
    async def create_key(body: NewKey, request: Request) -> Response:
        """A new API key (shown once). Only ``name`` and ``role`` may be given."""
        key, row = await run_in_threadpool(lambda: workspace.store.api_keys.create(body.name, body.role, actor=_who(request)))
        return _json({"id": row.id, "name": row.name, "role": row.role, "key": key}, 201)

    @app.delete("/api/keys/{key_id}")
    async def revoke_key(key_id: str, request: Request) -> Response:
        await run_in_threadpool(lambda: workspace.store.api_keys.revoke(key_id, actor=_who(request)))
        if authenticator is not None:
            await run_in_threadpool(authenticator.refresh)
        return _json({"revoked": key_id})

    @app.get("/api/monitors")
    async def list_monitors() -> Response:
        rows = await run_in_threadpool(workspace.store.monitors.list)
        return _json({"monitors": [{"deployment": m.deployment, "name": m.name, "config": m.config} for m in rows]})

    @app.put("/api/monitors", openapi_extra=json_body(MONITOR_BODY))
    async def put_monitor(request: Request) -> Response:
        """Create or replace a monitor (the YAML entry's fields, as JSON)."""
        import orjson

        try:
            data = orjson.loads(await _body(request))
        except orjson.JSONDecodeError as exc:
            return _error(400, f"Invalid JSON: {exc}.")
        if not isinstance(data, dict):
            return _error(422, "The body must be one JSON object: a monitor's fields.")
        row = await run_in_threadpool(workspace.add_monitor, data)
        return _json({"deployment": row.deployment, "name": row.name, "config": row.config})

    @app.delete("/api/monitors/{deployment}/{name}")
    async def delete_monitor(deployment: str, name: str) -> Response:
        await run_in_threadpool(workspace.store.monitors.remove, deployment, name)
        return _json({"removed": f"{deployment}/{name}"})

    return AccessControl(FastPath(app, inference) if fast_path else app, authenticator)


class NewKey(BaseModel):
    """The body of ``POST /api/keys``: nothing else is accepted (no id, hash or timestamps by mass assignment)."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")  # the name rule has a lookahead
    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    role: Literal["viewer", "predictor", "operator", "admin"]
