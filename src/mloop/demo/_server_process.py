"""Start ``mloop serve`` as a real child process on a free loopback port, and stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mloop.errors import Unavailable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``mloop serve`` for ``workspace`` in a child process; a context manager that waits until ready."""

    def __init__(
        self, workspace: Path, *, port: int | None = None, log_flush_interval: float = 0.2, log_file: Path | None = None, drain_seconds: float = 0.0,
        event_poll_interval: float | None = None, settings: dict[str, str] | None = None, workers: int = 1,
    ) -> None:
        self.workers = workers
        self.settings = dict(settings or {})  # more MLOOP_* variables for the child
        self.event_poll_interval = event_poll_interval
        self.drain_seconds = drain_seconds
        self.workspace = workspace
        self.port = port or free_port()
        self.log_flush_interval = log_flush_interval
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` with the workspace's own admin key (``keys/admin.key``)."""
        from mloop.security import Keyring

        return {"Authorization": f"Bearer {Keyring(self.workspace / 'keys').credential()}"}

    def client(self, **options: object) -> httpx.Client:
        """An HTTP client for this server that authenticates as the workspace."""
        return httpx.Client(base_url=self.url, headers=self.headers, **options)  # type: ignore[arg-type]

    def start(self, timeout: float = 60.0) -> ServerProcess:
        cmd = [
            sys.executable, "-m", "mloop", "--workspace", str(self.workspace), "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-flush-interval", str(self.log_flush_interval),
            "--drain-seconds", str(self.drain_seconds), "--workers", str(self.workers),
        ]
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        env = {**os.environ, "OMP_NUM_THREADS": "1", **self.settings}
        if self.event_poll_interval is not None:  # handed down as the setting it is
            env["MLOOP_EVENT_POLL_INTERVAL"] = str(self.event_poll_interval)
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"The server exited with code {self.proc.returncode} while starting; see {self.log_file}.")
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise Unavailable(f"The server did not become ready within {timeout:.0f} s.")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:  # not listening yet
            return False

    def terminate(self) -> None:
        """Send SIGTERM without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait: the server drains, flushes its prediction log and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None and self.proc.poll() is None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
