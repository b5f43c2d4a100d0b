"""Run the app under uvicorn: ``mloop serve``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from mloop.workspace import Workspace


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the workspace comes from ``MLOOP_HOME``."""
    from mloop.serving._app import create_app

    flush = float(os.environ.get("MLOOP_LOG_FLUSH_INTERVAL", "1.0"))
    return create_app(Workspace.open(os.environ.get("MLOOP_HOME")), log_flush_interval=flush)


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, log_flush_interval: float = 1.0) -> None:
    """Serve every deployment of ``workspace`` until SIGTERM/SIGINT (then drain and flush the log)."""
    import signal

    import uvicorn

    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal under the handler it found; a no-op
    # handler here makes that re-raise harmless, so a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    os.environ["MLOOP_HOME"] = str(workspace.root)
    os.environ["MLOOP_LOG_FLUSH_INTERVAL"] = str(log_flush_interval)
    uvicorn.run(
        "mloop.serving._server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
