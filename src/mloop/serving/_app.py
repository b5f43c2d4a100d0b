"""The app factory: builds a server's parts from a workspace, gathers their routes into the one route table,
derives the FastAPI routes (which document the API) from it, and puts the gateway (access control and the
fast path, driven by the same table) in front."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route as StarletteRoute

from mloop import __version__
from mloop._background import LeasedLoop
from mloop.monitoring import MonitorMetrics, MonitorScheduler, PredictionLog, sink_for
from mloop.security import Authenticator
from mloop.serving._attribution import monitor_runner
from mloop.serving._explain import ExplainRoutes
from mloop.serving._features import FreshnessCollector, online_features
from mloop.serving._gateway import Gateway
from mloop.serving._hub import ModelHub
from mloop.serving._inference import Inference
from mloop.serving._metrics import ServingMetrics
from mloop.serving._openapi import ERROR_RESPONSES
from mloop.serving._replies import Reply, error_reply, failure
from mloop.serving._routes import Call, Hooks, Mounted, Route, RouteTable, read_body
from mloop.serving._stats import StatsBook
from mloop.serving._status import Status
from mloop.workspace import Workspace

#: Background work a server runs beside its routes: built from the workspace and the app's Prometheus registry, or None when off.
BackgroundFactory = Callable[[Workspace, Any], LeasedLoop | None]

#: More routes for a server of a workspace (the operations' API, the dashboard, the MCP endpoint): built from the workspace
#: and the server's hooks (what to call after a change it must see at once; whether authentication is on).
RoutesFactory = Callable[[Workspace, Hooks], list[Route | Mounted]]

#: Routes the web framework answers itself (the API's own documentation); they need a role like any other.
FRAMEWORK_ROUTES = tuple(Route("GET", path, "viewer") for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"))


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


def _endpoint(route: Route) -> Any:
    """A FastAPI endpoint that reads the request framework-free and calls the route's handler."""
    handler = route.handler
    assert handler is not None
    reads_body = route.method in ("POST", "PUT", "PATCH")

    async def endpoint(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await read_body(request.stream(), headers.get("content-length")) if reads_body else b""
            call = Call(dict(request.path_params), headers, body, request.scope.get("principal"), dict(request.query_params))
            reply = await handler(call)
        except Exception as exc:  # noqa: BLE001 - every failure is rendered by the one error function
            reply = failure(exc)
        return _response(reply)

    endpoint.__name__ = f"{route.method.lower()}_{route.path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}"
    endpoint.__doc__ = route.summary
    return endpoint


def build_fastapi(table: RouteTable, lifespan: Any) -> FastAPI:
    """A FastAPI app whose routes are the table's (those with a handler), each documented in ``/openapi.json``."""
    app = FastAPI(title="mloop", version=__version__, lifespan=lifespan, responses=ERROR_RESPONSES)
    for route in table.routes:
        if route.handler is None:
            continue
        app.add_api_route(
            route.path, _endpoint(route), methods=[route.method], status_code=route.status, summary=route.summary or None,
            openapi_extra=route.openapi() or None, response_class=PlainTextResponse if route.text else Response,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _response(error_reply(exc.status_code, str(exc.detail), None, dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        return _response(failure(exc))

    return app


def create_app(
    workspace: Workspace,
    *,
    log_flush_interval: float | None = None,
    poll_interval: float | None = None,
    fast_path: bool = True,
    monitor_interval: float | None = None,
    auth: bool | None = None,
    background: Sequence[BackgroundFactory] = (),
    routes: Sequence[RoutesFactory] = (),
) -> Gateway:
    """An ASGI app serving every deployment of ``workspace``.

    ``auth`` (default ``MLOOP_AUTH``, on) checks every request's credential against the route table; only the
    health probes are public. With authentication off the app answers only connections that arrived on a
    loopback address, however it is run. With ``fast_path`` (the default) the hot routes are answered by the
    outermost layer without the framework's middleware and routing; ``fast_path=False`` sends them through
    FastAPI (same handlers). The hub looks at the event bus every ``poll_interval`` seconds (default
    ``MLOOP_EVENT_POLL_INTERVAL``). The workspace's monitors run on a scheduler thread every ``monitor_interval``
    seconds (default ``MLOOP_MONITOR_INTERVAL``; 0 turns it off); of several processes one holds the lease.
    ``background`` adds more leased work built from the workspace and the app's Prometheus registry (the layers
    above serving hand it in: ``mloop serve`` runs the rollout driver this way), and ``routes`` more routes built from
    the workspace (the operations' API, the dashboard and the MCP endpoint: ``mloop.server`` composes them)."""
    settings = workspace.settings
    metrics = ServingMetrics()
    stats = StatsBook(
        on_batch=lambda dep, version, rows: metrics.batch_size.labels(dep, str(version)).observe(rows),
        on_fallback=lambda dep, version: metrics.fallbacks.labels(dep, str(version)).inc(),
    )
    poll = settings.event_poll_interval if poll_interval is None else poll_interval
    features = online_features(workspace)
    metrics.registry.register(FreshnessCollector(features))
    hub = ModelHub(workspace.registry, workspace.store.deployments, workspace.bus, poll_interval=poll, stats=stats,
                   rollouts=workspace.store.rollouts, features=features)
    sink = sink_for(settings.log_transport, workspace.logs_dir)
    flush = settings.log_flush_interval if log_flush_interval is None else log_flush_interval
    predictions = PredictionLog(workspace.logs_dir, flush_interval=flush, sink=sink)
    authenticator = Authenticator.configured(settings, workspace.keyring, workspace.store.api_keys) if (settings.auth if auth is None else auth) else None
    interval = settings.monitor_interval if monitor_interval is None else monitor_interval
    scheduler = None
    if interval > 0:
        scheduler = MonitorScheduler(monitor_runner(workspace, features, metrics=MonitorMetrics(metrics.registry)), interval=interval)
    loops: list[LeasedLoop] = [*([scheduler] if scheduler is not None else []),
                               *(loop for make in background if (loop := make(workspace, metrics.registry)) is not None)]
    status = Status(hub, metrics)
    explanations = ExplainRoutes(hub, metrics)
    def changed(kind: str) -> None:
        if kind == "routing":
            hub.refresh()
        elif kind == "keys" and authenticator is not None:
            authenticator.refresh()

    extra = [item for make in routes for item in make(workspace, Hooks(changed, authenticator is not None, authenticator))]
    mounted = [m for m in extra if isinstance(m, Mounted)]
    table = RouteTable([
        *status.routes(), *Inference(hub, predictions, metrics).routes(), *explanations.routes(), *features.routes(),
        *(r for r in extra if isinstance(r, Route)), *(Route(method, m.path, m.role, summary=m.summary) for m in mounted for method in m.methods),
        *FRAMEWORK_ROUTES,
    ])

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
        for loop in loops:
            loop.start()
        try:
            async with AsyncExitStack() as stack:
                for m in mounted:
                    if m.lifespan is not None:
                        await stack.enter_async_context(m.lifespan())
                yield
        finally:
            status.stopping.set()
            for loop in loops:
                await run_in_threadpool(loop.stop)
            await run_in_threadpool(explanations.close)
            await run_in_threadpool(hub.stop)
            await run_in_threadpool(predictions.close)
            features.close()

    app = build_fastapi(table, lifespan)
    for m in mounted:  # the gateway checked the caller against the table; the app answers the rest itself
        app.router.routes.append(StarletteRoute(m.path, endpoint=m.app, methods=list(m.methods), include_in_schema=False))
    app.state.hub = hub
    app.state.predictions = predictions
    app.state.scheduler = scheduler
    app.state.background = loops
    return Gateway(app, table, authenticator, fast=fast_path)
