from __future__ import annotations

import multiprocessing as mp

import pytest

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.events import DEPLOYMENT_CHANGED, SqlEventBus
from mloop.store import MetadataStore, current_revision, head_revision


def _migrate(url: str) -> None:
    MetadataStore(url).migrate()


def test_migrate_brings_schema_to_head_and_is_idempotent(store_url: str) -> None:
    store = MetadataStore(store_url)
    assert current_revision(store.engine) is None
    store.migrate()
    store.migrate()
    assert current_revision(store.engine) == head_revision()
    assert [e.action for e in store.audit.list(action="schema.created")] == ["schema.created"]


def test_concurrent_processes_apply_migrations_exactly_once(store_url: str) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_migrate, args=(store_url,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = MetadataStore(store_url)
    assert current_revision(store.engine) == head_revision()
    assert len(store.audit.list(action="schema.created")) == 1


def test_deployments_round_trip_with_revisions(store_url: str) -> None:
    store = MetadataStore(store_url)
    store.migrate()
    with store.transaction() as conn:
        created = store.deployments.upsert(conn, "flights", model_name="flights", alias="champion")
    assert created.revision == 1
    with store.transaction() as conn:
        updated = store.deployments.upsert(
            conn, "flights", model_name="flights", alias="champion", rollout={"candidate_alias": "challenger", "percent": 10}, expected_revision=1
        )
    assert updated.revision == 2
    got = store.deployments.get("flights")
    assert got.rollout == {"candidate_alias": "challenger", "percent": 10}
    assert [d.name for d in store.deployments.list()] == ["flights"]
    with pytest.raises(Conflict, match="revision 2, expected 1"), store.transaction() as conn:
        store.deployments.upsert(conn, "flights", model_name="flights", alias="x", expected_revision=1)
    assert store.deployments.get("flights").alias == "champion"  # the failed write left nothing behind


def test_unknown_deployment_and_bad_names_are_clear_errors(store_url: str) -> None:
    store = MetadataStore(store_url)
    store.migrate()
    with pytest.raises(NotFound, match="Deployment 'nope' does not exist"):
        store.deployments.get("nope")
    with pytest.raises(InvalidInput, match="Invalid deployment name '../etc'"), store.transaction() as conn:
        store.deployments.upsert(conn, "../etc", model_name="m", alias="champion")


def test_events_are_published_with_their_transaction_only(store_url: str) -> None:
    store = MetadataStore(store_url)
    store.migrate()
    bus = SqlEventBus(store.engine)
    assert bus.last_id() == 0
    with store.transaction() as conn:
        bus.publish(conn, DEPLOYMENT_CHANGED, {"name": "a"})
    with pytest.raises(RuntimeError), store.transaction() as conn:
        bus.publish(conn, DEPLOYMENT_CHANGED, {"name": "rolled-back"})
        raise RuntimeError("boom")
    with store.transaction() as conn:
        bus.publish(conn, DEPLOYMENT_CHANGED, {"name": "b"})
    events = bus.poll(0)
    assert [e.payload["name"] for e in events] == ["a", "b"]
    assert bus.poll(events[0].id)[0].payload == {"name": "b"}
    assert bus.last_id() == events[-1].id


def test_manifests_are_immutable(store_url: str) -> None:
    store = MetadataStore(store_url)
    store.migrate()
    with store.transaction() as conn:
        store.manifests.put(conn, "m", 1, {"MLmodel": "a" * 64})
        store.manifests.put(conn, "m", 1, {"MLmodel": "a" * 64})  # same content: fine
    assert store.manifests.get("m", 1) == {"MLmodel": "a" * 64}
    with pytest.raises(Conflict, match="versions are immutable"), store.transaction() as conn:
        store.manifests.put(conn, "m", 1, {"MLmodel": "b" * 64})
    with pytest.raises(NotFound, match="not registered through mloop"):
        store.manifests.get("m", 2)


def test_unsupported_database_scheme_lists_valid_ones() -> None:
    with pytest.raises(InvalidInput, match="Valid: sqlite, postgresql"):
        MetadataStore("mysql://user:secret@host/db")


def test_urls_print_without_passwords() -> None:
    from mloop.store import redact_url

    assert redact_url("postgresql+psycopg://me:s3cret@db:5432/x") == "postgresql+psycopg://me:***@db:5432/x"


def test_monitors_stored_with_the_old_effect_floor_still_parse_after_the_upgrade(store_url: str) -> None:
    """Revision 0005 drops ``effect_floor`` (a floor on KS's D) from stored monitor configs: without it, every
    monitor registered before would fail to parse and go quiet."""
    import json
    import time

    import sqlalchemy as sa
    from alembic import command

    from mloop.monitoring import parse_monitor
    from mloop.store._migrate import _config

    store = MetadataStore(store_url)
    cfg = _config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    old = {"name": "inputs", "deployment": "dep", "reference": {"first_predictions": 100}, "window": {"kind": "count", "size": 100},
           "effect_floor": 0.1, "alpha": 0.05}
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO monitors (deployment, name, config, created_at) VALUES ('dep', 'inputs', :c, :t)"),
                     {"c": json.dumps(old), "t": time.time()})
    store.migrate()
    row = store.monitors.get("dep", "inputs")
    assert "effect_floor" not in row.config and parse_monitor(row.config).floors == {}
    with pytest.raises(InvalidInput, match="effect_floor was replaced by floors") as info:
        parse_monitor(old)  # a file or request that still says effect_floor is told what changed
    assert info.value.field == "effect_floor"
