"""The online store conformance suite against the real Redis on 127.0.0.1:6379, under a random key prefix that is
deleted afterwards; and the CLI reading and writing through ``MLOOP_ONLINE_STORE``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.cli._app import main
from mloop.features import OnlineStore, materialize
from mloop.features._online import RedisOnlineStore, open_online_store
from mloop.workspace import Workspace
from tests.features.test_online import BASE, OnlineStoreChecks, _drivers, _project

pytestmark = pytest.mark.redis
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> Iterator[str]:
    prefix = f"mloop-test-{uuid.uuid4().hex[:12]}:"
    yield f"{REDIS}?prefix={prefix}"
    import redis

    client = redis.Redis.from_url(REDIS)
    names = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if names:
        client.delete(*names)
    client.close()


class TestRedisOnlineStore(OnlineStoreChecks):
    @pytest.fixture
    def store(self, redis_url: str) -> Iterator[OnlineStore]:
        store = open_online_store(redis_url)
        yield store
        store.close()

    def test_rows_go_in_scripts_of_bounded_size_and_the_watermark_with_the_last(self, tmp_path: Path, store: OnlineStore) -> None:
        assert isinstance(store, RedisOnlineStore)
        registry = _project(tmp_path, _drivers([(k, "2026-01-01 10:00", "2026-01-01 10:00", float(k)) for k in range(4500)]))
        sent: list[int] = []
        merge = store._merge

        def counting(*, keys: list[str], args: list[object]) -> object:
            sent.append(int(str(args[0])))
            return merge(keys=keys, args=args)

        store._merge = counting  # type: ignore[method-assign]
        result = materialize(registry, store, views=["driver_stats"], end="2026-01-01T12:00", chunk_rows=1000)
        assert result[0].rows == 4500 and sent == [2000, 2000, 500]
        assert store.read("driver_stats", ["4499", "4500"])[0] is not None and store.read("driver_stats", ["4500"]) == [None]


def test_the_cli_reads_and_writes_redis_through_the_setting(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path, _drivers(BASE))
    Workspace.init(tmp_path / "ws").close()
    monkeypatch.setenv("MLOOP_ONLINE_STORE", redis_url)
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(tmp_path / "features.yaml")])
    main([*base, "materialize", "--view", "zone_stats", "--end", "2026-01-01T14:00:00Z"])
    assert "zone_stats: 3 rows moved" in capsys.readouterr().out
    assert not (tmp_path / "ws" / "features" / "online.db").exists()
    main([*base, "online", "--features", "zone_stats:demand", "--key", "city=b,zone=1"])
    assert json.loads(capsys.readouterr().out) == [{"city": "b", "zone": 1, "demand": 3.5}]
