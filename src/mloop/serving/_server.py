"""Run the app under uvicorn: ``mloop serve``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput
from mloop.settings import Settings
from mloop.workspace import Workspace


def app_from_env() -> Any:
    """Factory for uvicorn's worker processes: everything comes from ``Settings`` (``MLOOP_*``)."""
    from mloop.serving._app import create_app

    return create_app(Workspace.open(settings=Settings()))


def check_bind(host: str, auth: bool, *, source: str) -> None:
    """Refuse to serve without authentication on anything but a loopback address; ``source`` names the knob
    that turned authentication off (``--no-auth``, ``MLOOP_AUTH``, ``auth``)."""
    from mloop.serving._gateway import is_loopback

    if not auth and not is_loopback(host):
        raise InvalidInput(
            f"{source}: serving without authentication is only allowed on a loopback address (127.0.0.1, ::1, localhost), "
            f"not {host!r}. Keep authentication on, or bind 127.0.0.1.",
            field=source,
        )


def _draining_server(config: Any, drain_seconds: float) -> Any:
    """uvicorn's server, but SIGTERM first turns readiness to 503 for ``drain_seconds`` (so a load balancer
    stops sending), then stops accepting, finishes in-flight requests and runs the lifespan shutdown."""
    import threading

    import uvicorn

    from mloop.serving._status import DRAINING

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            first = not DRAINING.is_set()
            DRAINING.set()
            if first and drain_seconds > 0:
                threading.Timer(drain_seconds, super().handle_exit, (sig, frame)).start()
            else:
                super().handle_exit(sig, frame)

    return Server(config)


def tls13_context(config: Any, default: Any) -> Any:
    """uvicorn's SSL context for the configured certificate and key, with TLS 1.3 as the minimum version."""
    import ssl

    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def tls_options(cert: Path | None, key: Path | None) -> dict[str, Any]:
    """uvicorn options for HTTPS (TLS 1.3 minimum), or none; both files or neither, and both must exist."""
    from mloop.errors import InvalidInput

    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise InvalidInput("Give both --tls-cert and --tls-key, or neither.", field="--tls-cert" if cert is None else "--tls-key")
    for path, name in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            raise InvalidInput(f"{name}: no file at {path}.", field=name)
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_context_factory": tls13_context}


def serve(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_flush_interval: float | None = None,
    drain_seconds: float = 0.0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    auth: bool | None = None,
    auth_source: str = "auth",
    announce: Callable[[str], None] | None = None,
    app_factory: Callable[..., Any] | None = None,
    worker_factory: str = "mloop.serving._server:app_from_env",
) -> None:
    """Serve every deployment of ``workspace`` until SIGTERM/SIGINT: readiness turns 503 (for ``drain_seconds``),
    in-flight requests finish, the prediction log is flushed, and the process exits 0. With ``tls_cert`` and
    ``tls_key`` it serves HTTPS, TLS 1.3 or newer only.

    ``auth`` (default ``MLOOP_AUTH``) off is refused unless ``host`` is a loopback address, whichever way it was
    turned off; ``announce`` receives one line saying what is served where, and whether authentication is on.
    ``app_factory`` (default :func:`create_app`) builds the app of a single process, ``worker_factory`` (an import
    path) each worker's: ``mloop serve`` passes the ones that add the background decisions (``mloop.automation``)."""
    import signal

    import uvicorn

    auth_on = workspace.settings.auth if auth is None else auth
    check_bind(host, auth_on, source="MLOOP_AUTH" if auth is None else auth_source)
    tls = tls_options(tls_cert, tls_key)
    flush = workspace.settings.log_flush_interval if log_flush_interval is None else log_flush_interval
    if announce is not None:
        names = [d.name for d in workspace.store.deployments.list()]
        scheme = "https" if tls else "http"
        state = "on" if auth_on else "OFF (loopback only)"
        announce(f"serving {names or 'no deployments yet'} on {scheme}://{host}:{port} (workers={workers}, authentication {state})")
    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal under the handler it found; a no-op
    # handler here makes that re-raise harmless, so a graceful stop exits 0. The old handlers come back after.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    options: dict[str, Any] = dict(host=host, port=port, log_level="warning", timeout_graceful_shutdown=30, **tls)
    try:
        if workers == 1:
            from mloop.serving._app import create_app

            app = (app_factory or create_app)(workspace, log_flush_interval=flush, auth=auth_on)
            _draining_server(uvicorn.Config(app, **options), drain_seconds).run()
            return
        # Worker processes build their own app from Settings: these settings are handed down as MLOOP_*
        # variables (Settings.environment), the one way settings cross a process boundary. uvicorn's supervisor
        # forwards the signal; each worker drains and flushes in its lifespan.
        settings = workspace.settings.model_copy(update={"home": workspace.root, "auth": auth_on, "log_flush_interval": flush})
        saved = dict(os.environ)
        os.environ.update(settings.environment())
        try:
            uvicorn.run(worker_factory, factory=True, workers=workers, **options)
        finally:  # the variables were for the workers; this process reads its settings as they were
            os.environ.clear()
            os.environ.update(saved)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
