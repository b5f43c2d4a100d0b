"""Run the app under uvicorn: ``mloop serve``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mloop.workspace import Workspace


def app_from_env() -> Any:
    """Factory for uvicorn workers: the workspace comes from ``MLOOP_HOME``."""
    from mloop.serving._app import create_app

    flush = float(os.environ.get("MLOOP_LOG_FLUSH_INTERVAL", "1.0"))
    return create_app(Workspace.open(os.environ.get("MLOOP_HOME")), log_flush_interval=flush)


def _draining_server(config: Any, drain_seconds: float) -> Any:
    """uvicorn's server, but SIGTERM first turns readiness to 503 for ``drain_seconds`` (so a load balancer
    stops sending), then stops accepting, finishes in-flight requests and runs the lifespan shutdown."""
    import threading

    import uvicorn

    from mloop.serving._app import DRAINING

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
    workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, log_flush_interval: float = 1.0, drain_seconds: float = 0.0,
    tls_cert: Path | None = None, tls_key: Path | None = None,
) -> None:
    """Serve every deployment of ``workspace`` until SIGTERM/SIGINT: readiness turns 503 (for ``drain_seconds``),
    in-flight requests finish, the prediction log is flushed, and the process exits 0. With ``tls_cert`` and
    ``tls_key`` it serves HTTPS, TLS 1.3 or newer only."""
    import signal

    import uvicorn

    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal under the handler it found; a no-op
    # handler here makes that re-raise harmless, so a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    os.environ["MLOOP_HOME"] = str(workspace.root)
    os.environ["MLOOP_LOG_FLUSH_INTERVAL"] = str(log_flush_interval)
    options: dict[str, Any] = dict(
        factory=True, host=host, port=port, workers=workers, log_level="warning", timeout_graceful_shutdown=30,
        **tls_options(tls_cert, tls_key),
    )
    if workers == 1:
        _draining_server(uvicorn.Config("mloop.serving._server:app_from_env", **options), drain_seconds).run()
    else:  # uvicorn's supervisor forwards the signal; each worker drains and flushes in its lifespan
        uvicorn.run("mloop.serving._server:app_from_env", **options)
