"""Imports are a budget: each command loads only what it uses. Checked in a fresh interpreter per command (the
modules a whole `mloop ...` process loaded), not by timing, so the test holds on any machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mloop.workspace import Workspace

_PROBE = """
import json, sys
from mloop.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

HEAVY = {"mlflow", "scipy", "sklearn", "fastapi", "uvicorn", "onnxruntime", "alembic", "duckdb", "optuna", "river", "lightgbm", "jinja2"}


def _modules(args: list[str]) -> set[str]:
    """Every module a whole ``mloop ARGS`` process loaded."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _loaded(args: list[str]) -> set[str]:
    """The top-level packages a whole ``mloop ARGS`` process loaded."""
    return {m.split(".")[0] for m in _modules(args)}


@pytest.fixture(scope="module")
def ws(shared_deployed: Workspace) -> Workspace:
    return shared_deployed


@pytest.mark.parametrize(
    "command",
    [["models", "list"], ["runs", "list"], ["models", "show", "toy"], ["deployments", "list"], ["auth", "list-keys"], ["monitors", "list"]],
    ids=lambda c: " ".join(c),
)
def test_listing_commands_load_neither_mlflow_nor_the_numeric_stack(ws: Workspace, command: list[str]) -> None:
    loaded = _loaded(["-w", str(ws.root), *command])
    assert loaded & (HEAVY | {"pandas"}) == set(), sorted(loaded & (HEAVY | {"pandas"}))


def test_the_drift_report_loads_no_workspace_server_or_mlflow(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    for name in ("ref", "cur"):
        pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)}).to_parquet(tmp_path / f"{name}.parquet")
    modules = _modules(["drift", "report", "-r", str(tmp_path / "ref.parquet"), "-c", str(tmp_path / "cur.parquet"), "--json"])
    loaded = {m.split(".")[0] for m in modules}
    assert loaded & {"mlflow", "sqlalchemy", "fastapi", "uvicorn", "alembic", "duckdb", "sklearn", "jinja2", "river", "pandas", "scipy"} == set()
    assert "pyarrow.dataset" not in modules and "mloop.data._fingerprint" not in modules  # Arrow's Parquet reader alone


def test_help_and_the_package_load_next_to_nothing() -> None:
    loaded = _loaded(["--help"])
    assert loaded & (HEAVY | {"pandas", "numpy", "sqlalchemy", "pydantic", "pyarrow"}) == set(), sorted(loaded)
    done = subprocess.run([sys.executable, "-c", "import json, sys, mloop; print(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=60, check=True)
    packages = {m.split(".")[0] for m in json.loads(done.stdout)}
    assert packages & (HEAVY | {"pandas", "numpy", "sqlalchemy", "pydantic", "typer", "rich"}) == set(), sorted(packages)


def test_scoring_a_tree_model_loads_no_deep_learning_stack(ws: Workspace) -> None:
    # skops walks every scikit-learn package when imported; its array-API torch shim would pull in torch (1.3 s)
    rows = json.dumps([{"x1": 0.1, "x2": -0.3, "x3": 1.0, "color": "red"}])
    loaded = _loaded(["-w", str(ws.root), "predict", "toy", "--rows", rows])
    assert {"sklearn", "skops"} <= loaded and loaded & {"torch", "captum", "ray"} == set(), sorted(loaded & {"torch", "captum", "ray"})
