"""The prediction log over Redis Streams and NATS JetStream: the real servers on 127.0.0.1, no mocks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.errors import InvalidInput
from mloop.monitoring import LogReader, NatsJetStreamSink, PredictionLog, RedisStreamSink, collector_for, sink_for

REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"


def _fill(log: PredictionLog, n: int = 20) -> None:
    for i in range(n):
        log.log_predictions("dep.a", 1, f"r{i}", 1000.0 + i, pd.DataFrame({"x": [float(i), float(i) + 0.5]}), np.array([0.1, 0.9]), 2.0)
    for i in range(0, n, 2):
        log.log_feedback("dep.a", f"r{i}", [1.0, 0.0], 2000.0 + i)


def _check(root: Path, n: int = 20) -> None:
    frame = LogReader(root).labelled("dep.a")
    assert len(frame) == 2 * n
    assert frame["x"].tolist()[:4] == [0.0, 0.5, 1.0, 1.5]
    assert frame["label"].notna().sum() == n  # every other request got labels, for both rows


@pytest.fixture
def redis_stream() -> Iterator[str]:
    import redis

    name = f"mloop-test-{uuid.uuid4().hex[:8]}"
    yield name
    redis.Redis.from_url(REDIS).delete(name)


@pytest.mark.redis
def test_redis_stream_to_segments_and_late_labels_join(tmp_path: Path, redis_stream: str) -> None:
    log = PredictionLog(tmp_path / "unused", sink=RedisStreamSink(REDIS, stream=redis_stream))
    _fill(log)
    assert log.flush() == 60
    log.close()
    assert not (tmp_path / "unused").exists()  # nothing went to local disk on the server side
    collector = collector_for(REDIS, tmp_path / "logs", stream=redis_stream)
    assert collector.poll(wait=0.1) == 2  # one batch of predictions, one of feedback
    assert collector.poll(wait=0.1) == 0
    collector.close()
    _check(tmp_path / "logs")


@pytest.mark.redis
def test_redis_message_taken_but_not_acknowledged_is_collected_again(tmp_path: Path, redis_stream: str) -> None:
    import redis

    log = PredictionLog(tmp_path, sink=RedisStreamSink(REDIS, stream=redis_stream))
    _fill(log)
    log.close()
    first = collector_for(REDIS, tmp_path / "logs", stream=redis_stream, consumer="c1")
    # a collector that crashed after reading: the messages are pending for c1, never acknowledged
    client = redis.Redis.from_url(REDIS)
    assert len(client.xreadgroup("mloop-collector", "c1", {redis_stream: ">"}, count=10)[0][1]) == 2
    first.close()
    again = collector_for(REDIS, tmp_path / "logs", stream=redis_stream, consumer="c1")
    assert again.poll(wait=0.1) == 2 and again.poll(wait=0.1) == 0
    again.close()
    assert client.xlen(redis_stream) == 0  # acknowledged and deleted
    _check(tmp_path / "logs")


@pytest.mark.redis
def test_a_refusing_sink_keeps_the_rows_for_the_next_flush(tmp_path: Path, redis_stream: str) -> None:
    log = PredictionLog(tmp_path, sink=RedisStreamSink("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    _fill(log)
    with pytest.raises(Exception, match="(?i)connect"):
        log.flush()
    log.sink = RedisStreamSink(REDIS, stream=redis_stream)
    assert log.flush() == 60  # every row kept and sent once the stream is reachable
    log.close()
    collector = collector_for(REDIS, tmp_path / "logs", stream=redis_stream)
    collector.poll(wait=0.1)
    collector.close()
    _check(tmp_path / "logs")


@pytest.fixture
def nats_stream() -> Iterator[tuple[str, str]]:
    name = f"MLOOP_TEST_{uuid.uuid4().hex[:8].upper()}"
    subject = f"mloop.test{uuid.uuid4().hex[:8]}"
    yield name, subject

    async def drop() -> None:
        import nats

        nc = await nats.connect(NATS)
        try:
            await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(drop())


@pytest.mark.nats
def test_nats_jetstream_to_segments(tmp_path: Path, nats_stream: tuple[str, str]) -> None:
    stream, subject = nats_stream
    log = PredictionLog(tmp_path / "unused", sink=NatsJetStreamSink(NATS, stream=stream, subject=subject))
    _fill(log)
    assert log.flush() == 60
    log.close()
    collector = collector_for(NATS, tmp_path / "logs", stream=stream, subject=subject)
    collected = 0
    deadline = time.time() + 10
    while collected < 2 and time.time() < deadline:
        collected += collector.poll(wait=0.5)
    assert collected == 2 and collector.poll(wait=0.2) == 0  # acknowledged: not delivered twice
    collector.close()
    _check(tmp_path / "logs")
    # a second collector on the same durable consumer finds nothing left
    again = collector_for(NATS, tmp_path / "logs", stream=stream, subject=subject)
    assert again.poll(wait=0.3) == 0
    again.close()


def test_unknown_transports_are_refused_with_the_password_hidden(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"Unknown log transport 'kafka://u:\*\*\*@h:9092'") as info:
        sink_for("kafka://u:secret@h:9092", tmp_path)
    assert "secret" not in info.value.message and info.value.field == "log_transport"
    with pytest.raises(InvalidInput, match="needs a redis:// or nats://"):
        collector_for("local", tmp_path)
