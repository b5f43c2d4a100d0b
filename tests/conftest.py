"""Shared fixtures: fresh workspaces, a workspace with a registered and deployed model, PostgreSQL schemas."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_ADMIN_URL = os.environ.get("PG_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

from mloop.monitoring import MonitorMetrics, MonitorRunner, register_monitor  # noqa: E402
from mloop.security import Authenticator, rotate_signing_key  # noqa: E402
from mloop.store import Deployment, ServingConfig  # noqa: E402
from mloop.training import TabularSpec  # noqa: E402
from mloop.workspace import Workspace  # noqa: E402

__all__ = ["register_monitor", "rotate_signing_key"]  # re-exported for the tests, beside the helpers below

TOY_SPEC = TabularSpec(numeric=("x1", "x2", "x3"), categorical=("color",), target="y")


def toy_frame(n: int = 600, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """A small binary task with three numeric features and one categorical one."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, 3))
    color = rng.choice(["red", "green", "blue"], size=n)
    logit = 1.5 * x[:, 0] - x[:, 1] + (color == "red") * 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "color": color.astype(object), "y": y})


def train_and_register(ws: Workspace, *, name: str = "toy", alias: str | None = "champion", seed: int = 0) -> int:
    """Train a small pipeline, track it, register it; returns the version."""
    from mloop.training import fit

    frame = toy_frame(seed=seed)
    with ws.tracker.start_run("toy", run_name=f"toy-{seed}", seed=seed) as run:
        run.log_dataset(frame, context="training", name="toy", targets="y")
        params = {"max_iter": 20, "max_leaf_nodes": 8}
        model = fit(frame, TOY_SPEC, params, seed)
        run.log_params(params)
        run.log_metrics({"train_rows": len(frame)})
        uri = run.log_sklearn_model(model, frame[TOY_SPEC.features], labels=frame["y"])
    return ws.registry.register(uri, name, alias=alias).version


def deploy(ws: Workspace, name: str, model_name: str, alias: str = "champion", *, rollout: dict | None = None,
           serving: ServingConfig | None = None) -> Deployment:
    """Deploy through the use case a user calls (``mloop.serving.Deployments``)."""
    from mloop.serving import Deployments

    return Deployments(ws.registry, ws.store, ws.bus).deploy(name, model_name, alias, rollout=rollout, serving=serving)


def monitor_runner(ws: Workspace, metrics: MonitorMetrics | None = None) -> MonitorRunner:
    return MonitorRunner(ws.store, ws.bus, ws.logs_dir, ws.reports_dir, metrics=metrics, webhook_allow=ws.settings.webhook_hosts)


def authenticator(ws: Workspace) -> Authenticator:
    return Authenticator.configured(ws.settings, ws.keyring, ws.store.api_keys)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the ``mloop`` command line in-process: (exit code, stdout, stderr)."""
    from mloop.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path / "ws")
    yield ws
    ws.close()


def make_deployed(root: Path) -> Workspace:
    """A workspace at ``root`` with ``toy`` v1 as champion, deployed as ``toy``."""
    ws = Workspace.init(root)
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    return ws


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace with ``toy`` v1 as champion, deployed as ``toy``."""
    ws = make_deployed(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def shared_deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One deployed workspace per test module, for tests that do not change its deployments (building one costs seconds)."""
    ws = make_deployed(tmp_path_factory.mktemp("deployed") / "ws")
    yield ws
    ws.close()


def _pg_available() -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections live in a fresh PostgreSQL schema, dropped afterwards."""
    import sqlalchemy as sa

    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; CI must run these tests.")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    schema = f"mloop_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mloop.db'}"
    return str(request.getfixturevalue("pg_url"))


_SERVICES = {"redis": ("127.0.0.1", 6379), "nats": ("127.0.0.1", 4222)}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``redis`` or ``nats`` talk to the real server on 127.0.0.1: skipped locally when it is
    not running, a failure in CI (which must run them)."""
    import socket

    for marker, (host, port) in _SERVICES.items():
        if item.get_closest_marker(marker) is None:
            continue
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            if os.environ.get("CI"):
                pytest.fail(f"{marker} is not reachable at {host}:{port}; CI must run these tests.")
            pytest.skip(f"{marker} is not reachable at {host}:{port}")


def auth_headers(ws: Workspace) -> dict[str, str]:
    """``Authorization`` with the workspace's own admin key, as the CLI and the demo send it."""
    return {"Authorization": f"Bearer {ws.keyring.credential()}"}
