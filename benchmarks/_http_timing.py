"""Sequential request latency over one keep-alive HTTP/1.1 connection, the same way for every server measured.

Stdlib only (a raw socket and a small response parser), so that the Feast worker in its own venv and mloop's side
of benchmarks/features.py time their servers with the very same client; a plain socket costs a few tens of
microseconds a request, far below the servers' own times, where Python HTTP libraries cost hundreds."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Latencies in milliseconds of ``requests`` sequential requests (warm-up excluded); ``status`` of the first
    response that was not 200 (0 when all were)."""

    latencies_ms: list[float]
    status: int = 0

    def pct(self, q: float) -> float:
        """The ``q``-th percentile (nearest rank) in milliseconds; NaN when nothing was timed."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class KeepAliveClient:
    """One persistent loopback connection; :meth:`post` sends a request and returns (status, body)."""

    def __init__(self, port: int, host: str = "127.0.0.1", headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the keep-alive connection")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n{self.extra}"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.sock.sendall(request)
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, self._take(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._take(size))
                self._take(2)
            self._line()  # the blank line after the last chunk (no trailers expected)
            return status, b"".join(parts)
        raise ConnectionError(f"response to {path} has neither Content-Length nor chunked encoding: {headers}")

    def close(self) -> None:
        self.sock.close()


def time_posts(port: int, path: str, bodies: Sequence[bytes], *, warmup: int = 200, headers: dict[str, str] | None = None) -> Timing:
    """POST ``bodies`` (cycled) to ``path`` one after another on one keep-alive connection: ``warmup`` untimed
    requests first, then one timed request per body. Stops at the first status other than 200 and reports it."""
    client = KeepAliveClient(port, headers=headers)
    try:
        for i in range(warmup):
            status, _ = client.post(path, bodies[i % len(bodies)])
            if status != 200:
                return Timing([], status)
        times = []
        for body in bodies:
            started = time.perf_counter_ns()
            status, _ = client.post(path, body)
            times.append((time.perf_counter_ns() - started) / 1e6)
            if status != 200:
                return Timing(times, status)
        return Timing(times)
    finally:
        client.close()


def wait_ready(port: int, path: str, timeout: float = 120.0, is_alive: Callable[[], bool] | None = None) -> float:
    """Seconds until ``GET path`` answers 200 on loopback ``port``; raises after ``timeout`` or when ``is_alive()``
    (optional) says the server process has gone."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if is_alive is not None and not is_alive():
            raise RuntimeError(f"the server on port {port} exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                if sock.recv(64).split(b" ")[1:2] == [b"200"]:
                    return time.perf_counter() - started
        except (OSError, IndexError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no 200 from GET {path} on port {port} after {timeout:.0f} s")
