"""A small, fast HTTP/1.1 load generator: keep-alive connections over asyncio (uvloop), raw bytes.

Python HTTP clients cost hundreds of microseconds per request, more than the servers we measure; this one
costs tens, so the numbers describe the server. Loopback only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms.size else float("nan")


def _request(path: str, body: bytes, port: int, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _worker(port: int, payload: bytes, deadline: float, max_requests: int, lat: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and len(lat) < max_requests:
            t0 = time.perf_counter()
            writer.write(payload)
            status = await _read_response(reader)
            if status == 200:
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                errors.append(status)
    finally:
        writer.close()


async def _run(port: int, path: str, body: bytes, concurrency: int, seconds: float, max_requests: int, headers: dict[str, str] | None = None) -> LoadResult:
    payload = _request(path, body, port, headers)
    lat: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_worker(port, payload, deadline, max_requests, lat, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return LoadResult(concurrency, len(lat), len(errors), elapsed, np.array(lat))


def run_load(
    port: int, path: str, body: bytes, *, concurrency: int, seconds: float, max_requests: int = 10**9, warmup: int = 50, headers: dict[str, str] | None = None
) -> LoadResult:
    """Send ``body`` to ``path`` from ``concurrency`` connections for ``seconds`` (or ``max_requests``)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    if warmup:
        runner(_run(port, path, body, 1, 5.0, warmup, headers))
    return runner(_run(port, path, body, concurrency, seconds, max_requests, headers))
