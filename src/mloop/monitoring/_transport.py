"""Where flushed log batches go: local Parquet segments (the embedded default), or a Redis Stream / NATS
JetStream stream that a collector drains into the same segments (scale-out: many servers, one log).

A batch is one Arrow table (one deployment, one kind: ``predictions`` or ``feedback``) sent as Arrow IPC
bytes. A sink's ``write`` returns once the batch is durable where it went: fsynced and renamed (local), in
the stream (Redis; as durable as the server's persistence settings), or acknowledged by JetStream (stored).
The collector writes each message as a segment named after the message id and acknowledges it afterwards, so
a crash between the two rewrites the same segment (at-least-once delivery, exactly-once segments).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from mloop.errors import InvalidInput
from mloop.files import replacing
from mloop.names import check_name
from mloop.store import redact_url

log = logging.getLogger("mloop.monitoring")

KINDS = ("predictions", "feedback", "failures")
REDIS_STREAM = "mloop:log"
NATS_STREAM = "MLOOP_LOG"
NATS_SUBJECT = "mloop.log"
GROUP = "mloop-collector"


def to_ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class SegmentSink(Protocol):
    """Takes flushed batches; ``write`` returns once the batch is durable where it went."""

    def write(self, deployment: str, kind: str, table: Any) -> None: ...

    def close(self) -> None: ...


class LocalSegments:
    """Parquet segments under ``root/<deployment>/<kind>/``: temporary name, fsync, rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, deployment: str, kind: str, table: Any) -> None:
        self.write_segment(deployment, kind, table)

    def write_segment(self, deployment: str, kind: str, table: Any, *, name: str | None = None) -> Path:
        """Write one segment (named ``name`` when given: rewriting it is idempotent); returns its path."""
        import pyarrow.parquet as pq

        check_name(deployment, "deployment name")
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {KINDS}, got {kind!r}.", field="kind")
        folder = self.root / deployment / kind
        folder.mkdir(parents=True, exist_ok=True)
        name = name or f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        final = folder / f"{name}.parquet"
        with replacing(final) as tmp:
            pq.write_table(table, tmp)
        return final

    def close(self) -> None:
        """Nothing is held open between segments."""


class RedisStreamSink:
    """``XADD`` of each batch to a Redis Stream (``redis://host:port/db``)."""

    def __init__(self, url: str, *, stream: str | None = None) -> None:
        import redis

        self.stream = stream or REDIS_STREAM
        self._client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def write(self, deployment: str, kind: str, table: Any) -> None:
        self._client.xadd(self.stream, {"deployment": deployment, "kind": kind, "data": to_ipc(table)})

    def close(self) -> None:
        self._client.close()


class _LoopThread:
    """An asyncio loop on a thread of its own, so that synchronous callers can use nats-py."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mloop-nats", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _jetstream(url: str, stream: str, subject: str) -> tuple[Any, Any]:
    import nats
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    js = nc.jetstream()
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"]))
    return nc, js


class NatsJetStreamSink:
    """Publish each batch to JetStream (``nats://host:port``) and wait for its acknowledgement (stored)."""

    def __init__(self, url: str, *, stream: str | None = None, subject: str = NATS_SUBJECT) -> None:
        self.subject = subject
        self._loop = _LoopThread()
        try:
            self._nc, self._js = self._loop.run(_jetstream(url, stream or NATS_STREAM, subject))
        except Exception:
            self._loop.stop()
            raise

    def write(self, deployment: str, kind: str, table: Any) -> None:
        check_name(deployment, "deployment name")
        self._loop.run(self._js.publish(f"{self.subject}.{deployment}.{kind}", to_ipc(table)))

    def close(self) -> None:
        try:
            self._loop.run(self._nc.close(), timeout=10)
        finally:
            self._loop.stop()


def split_stream(transport: str) -> tuple[str, str | None]:
    """``redis://h:p/0?stream=NAME`` → (the URL without ``stream``, NAME): one URL names server and stream."""
    parts = urlsplit(transport)
    query = [kv for kv in parts.query.split("&") if kv]
    stream = next((kv.split("=", 1)[1] for kv in query if kv.startswith("stream=")), None)
    rest = "&".join(kv for kv in query if not kv.startswith("stream="))
    return parts._replace(query=rest).geturl(), stream


def _scheme(transport: str) -> str:
    return urlsplit(transport).scheme if "://" in transport else transport


def sink_for(transport: str, root: Path) -> SegmentSink:
    """The sink a server's log writes to: ``local`` (default), ``redis://…`` or ``nats://…`` (a
    ``?stream=NAME`` query picks the stream; default ``mloop:log`` / ``MLOOP_LOG``)."""
    scheme = _scheme(transport)
    if scheme in ("", "local"):
        return LocalSegments(root)
    url, stream = split_stream(transport)
    if scheme in REMOTE:
        return REMOTE[scheme][0](url, stream=stream)
    raise InvalidInput(f"Unknown log transport {redact_url(transport)!r}: use local, redis://host:port/db or nats://host:port.", field="log_transport")


class LogCollector(Protocol):
    """Drains a log stream into local segments; each message is acknowledged only after its segment is on disk."""

    def poll(self, *, batch: int = 100, wait: float = 1.0) -> int: ...

    def run(self, stop: threading.Event) -> int: ...

    def close(self) -> None: ...


class _Collector(ABC):
    """What every collector shares: writing a message as a segment named after its id, and the loop."""

    kind = "base"

    def __init__(self, root: Path, consumer: str) -> None:
        self.local = LocalSegments(root)
        self.consumer = consumer

    def _store(self, message_id: str, deployment: str, kind: str, data: bytes) -> None:
        try:
            self.local.write_segment(deployment, kind, from_ipc(data), name=f"seg-{self.kind}-{message_id}")
        except InvalidInput as exc:  # a malformed message must not block the stream: log it and move on
            log.warning("dropping log message %s: %s", message_id, exc.message)

    @abstractmethod
    def poll(self, *, batch: int = 100, wait: float = 1.0) -> int:
        """Collect what is available (waiting up to ``wait`` seconds for the first message); returns the count."""

    def run(self, stop: threading.Event) -> int:
        """Collect until ``stop`` is set; returns the number of messages collected."""
        total = 0
        while not stop.is_set():
            total += self.poll()
        return total


class RedisCollector(_Collector):
    """A consumer in the group ``mloop-collector`` of a Redis Stream; acknowledged messages are deleted."""

    kind = "redis"

    def __init__(self, url: str, root: Path, *, consumer: str, stream: str | None = None, subject: str = NATS_SUBJECT) -> None:
        import redis

        super().__init__(root, consumer)
        self.stream = stream or REDIS_STREAM
        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
        try:
            self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._pending = True  # first re-read what this consumer took but never acknowledged

    def poll(self, *, batch: int = 100, wait: float = 1.0) -> int:
        start = "0" if self._pending else ">"
        answer: Any = self._redis.xreadgroup(GROUP, self.consumer, {self.stream: start}, count=batch, block=None if self._pending else int(wait * 1000))
        messages = answer[0][1] if answer else []
        if self._pending and not messages:
            self._pending = False
            return self.poll(batch=batch, wait=wait)
        for message_id, fields in messages:
            self._store(message_id.decode().replace("-", "_"), fields[b"deployment"].decode(), fields[b"kind"].decode(), fields[b"data"])
            self._redis.xack(self.stream, GROUP, message_id)
            self._redis.xdel(self.stream, message_id)
        return len(messages)

    def close(self) -> None:
        self._redis.close()


class NatsCollector(_Collector):
    """A durable pull consumer ``mloop-collector`` on a JetStream stream."""

    kind = "nats"

    def __init__(self, url: str, root: Path, *, consumer: str, stream: str | None = None, subject: str = NATS_SUBJECT) -> None:
        super().__init__(root, consumer)
        self.subject = subject
        self.stream = stream or NATS_STREAM
        self._loop = _LoopThread()
        self._nc, js = self._loop.run(_jetstream(url, self.stream, subject))
        self._sub = self._loop.run(js.pull_subscribe(f"{subject}.>", durable=GROUP, stream=self.stream))

    def poll(self, *, batch: int = 100, wait: float = 1.0) -> int:
        import nats.errors

        async def fetch() -> list[Any]:
            try:
                return list(await self._sub.fetch(batch, timeout=wait))
            except nats.errors.TimeoutError:
                return []

        messages = self._loop.run(fetch(), timeout=wait + 30)
        for msg in messages:
            prefix, kind = msg.subject.rsplit(".", 1)
            self._store(f"{msg.metadata.sequence.stream:020d}", prefix.removeprefix(self.subject + "."), kind, msg.data)
            self._loop.run(msg.ack_sync())
        return len(messages)

    def close(self) -> None:
        try:
            self._loop.run(self._nc.close(), timeout=10)
        finally:
            self._loop.stop()


#: URL scheme → (the sink servers write to, the collector that drains it).
REMOTE: dict[str, tuple[Any, Any]] = {
    "redis": (RedisStreamSink, RedisCollector), "rediss": (RedisStreamSink, RedisCollector),
    "nats": (NatsJetStreamSink, NatsCollector), "tls": (NatsJetStreamSink, NatsCollector),
}


def collector_for(transport: str, root: Path, *, consumer: str = "collector-1", stream: str | None = None, subject: str = NATS_SUBJECT) -> LogCollector:
    """The collector for a ``redis://`` or ``nats://`` transport (``?stream=NAME`` as for :func:`sink_for`)."""
    scheme = _scheme(transport)
    if scheme not in REMOTE:
        raise InvalidInput(f"Collecting needs a redis:// or nats:// transport, got {redact_url(transport)!r}.", field="transport")
    url, named = split_stream(transport)
    collector: LogCollector = REMOTE[scheme][1](url, root, consumer=consumer, stream=stream or named, subject=subject)
    return collector
