"""Optimised variants: the accuracy gate's decision, and INT8 / pruned / distilled versions registered with lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.errors import InvalidInput
from mloop.optimize._gate import accuracy_gate
from mloop.pipelines._variants import METHOD_TAG, PARENT_TAG, make_variant
from mloop.workspace import Workspace
from tests.conftest import run_cli, toy_frame, train_and_register


def _proba(pred: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - pred, pred]).astype(float)


def test_the_gate_passes_a_variant_that_loses_nothing_and_fails_one_that_loses_three_points() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    parent = np.where(rng.random(5000) < 0.8, y, 1 - y)  # 80 % right
    same = accuracy_gate(y, _proba(parent), _proba(parent))
    assert same.passed and same.difference == 0 and same.agreement == 1.0
    worse = parent.copy()
    right = np.flatnonzero(parent == y)
    worse[right[:150]] = 1 - worse[right[:150]]  # 150 of 5,000 rows turn wrong: 3 points lost
    decision = accuracy_gate(y, _proba(parent), _proba(worse), max_loss=0.01)
    assert not decision.passed
    assert decision.difference == pytest.approx(-0.03) and decision.loss_upper_bound > 0.03
    assert "failed" in decision.describe() and "-3.00 points" in decision.describe()


def test_the_gate_wants_confidence_not_a_lucky_point_estimate() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    parent = y.copy()
    variant = y.copy()
    variant[:12] = 1 - variant[:12]  # 3 points worse on 400 rows
    variant[12:16], parent[12:16] = y[12:16], 1 - y[12:16]  # ... and 1 point better elsewhere: a net 2-point loss
    naive_difference = (variant == y).mean() - (parent == y).mean()
    assert naive_difference == pytest.approx(-0.02)
    decision = accuracy_gate(y, _proba(parent), _proba(variant), max_loss=0.025)
    assert not decision.passed  # the point estimate is inside the 2.5-point budget; its upper bound is not
    assert decision.loss_upper_bound > 0.025 > -decision.difference


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"labels": np.zeros(10), "parent_proba": np.zeros((10, 2)), "variant_proba": np.zeros((10, 2))}, "at least 30"),
    ({"variant_proba": np.zeros((100, 3))}, r"\[rows, classes\]"), ({"max_loss": 2.0}, "max_loss"),
])
def test_the_gate_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"labels": np.zeros(100), "parent_proba": np.zeros((100, 2)), "variant_proba": np.zeros((100, 2))}
    with pytest.raises(InvalidInput, match=message):
        accuracy_gate(**{**base, **kwargs})  # type: ignore[arg-type]


def _net(ws: Workspace) -> tuple[pd.DataFrame, pd.DataFrame]:
    from mloop.training import mlp

    train, test = toy_frame(2000, seed=1), toy_frame(1500, seed=2)
    with ws.tracker.start_run("nets", seed=0) as run:
        uri = run.log_sklearn_model(mlp(train, "y", hidden=[64, 32], epochs=4, batch_size=64), train.drop(columns="y"), labels=train["y"])
    ws.registry.register(uri, "net", alias="champion")
    return train, test


@pytest.mark.slow
def test_int8_and_pruned_variants_are_registered_with_lineage_and_served(workspace: Workspace) -> None:
    from mloop.serving._runtime import runtime_for

    train, test = _net(workspace)
    for method in ("int8-dynamic", "int8-static"):
        variant = make_variant(workspace, "net", "champion", method, train=train, test=test, target="y", into=f"net-{method}")
        assert variant.gate.passed and variant.version == 1
        loaded = workspace.registry.load(f"net-{method}", 1)
        assert loaded.flavour == "onnx" and loaded.twin is not None and variant.size_bytes == len(loaded.twin) < variant.parent_size_bytes
        runtime = runtime_for(loaded)
        assert runtime.kind == "onnx"
        rows = test.drop(columns="y").head(30)
        np.testing.assert_allclose(runtime.predict([runtime.prepare(rows.to_dict("list"))])[0], loaded.model.predict_proba(rows), atol=1e-6)
        tags = workspace.tracker.client.get_model_version(f"net-{method}", "1").tags
        assert tags[PARENT_TAG] == "net/1" and tags[METHOD_TAG] == method and tags["mloop.gate"].startswith("passed")
        assert "| parent model | net/1 |" in workspace.registry.card(f"net-{method}", 1)

    pruned = make_variant(workspace, "net", "champion", "prune", train=train, test=test, target="y", amount=0.5)
    assert pruned.version == 2 and pruned.gate.passed  # a new version of the parent's own name
    model = workspace.registry.load("net", 2)
    assert model.model.hidden == [32, 16] and model.twin is not None
    run = workspace.tracker.client.get_run(pruned.run_id)
    assert run.data.tags[PARENT_TAG] == "net/1" and run.data.metrics["gate.passed"] == 1.0
    assert run.data.metrics["gate.rows"] == len(test)

    # The same variant (seeded) judged only on the rows it gets wrong and its parent right: the gate must refuse it.
    parent, variant = workspace.registry.load("net", 1), workspace.registry.load("net", 2)
    x = test.drop(columns="y")
    worse = test[(variant.model.predict(x) != test["y"]) & (parent.model.predict(x) == test["y"])]
    hard = pd.concat([worse, test.head(max(0, 60 - len(worse)))])
    refused = make_variant(workspace, "net", "champion", "prune", train=train, test=hard, target="y", amount=0.5, max_loss=0.0)
    assert refused.version is None and not refused.gate.passed and refused.gate.difference < 0
    assert sorted(v.version for v in workspace.registry.versions("net")) == [1, 2]  # nothing registered for the refused one
    assert workspace.tracker.client.get_run(refused.run_id).data.metrics["gate.passed"] == 0.0  # the refusal is on record


@pytest.mark.slow
def test_a_gradient_boosted_model_is_distilled_into_a_network(workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    train_and_register(workspace, name="toy")
    train, test = toy_frame(600), toy_frame(1500, seed=5)  # the teacher's own training rows teach the student
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    args = ["--workspace", str(workspace.root), "models", "optimize", "toy@champion", "--method", "distill", "--train", str(tmp_path / "train.parquet"),
            "--test", str(tmp_path / "test.parquet"), "--target", "y", "--into", "toy-student", "--hidden", "16,8", "--max-loss", "1", "--json"]
    code, out, err = run_cli(args, capsys)
    result = json.loads(out)
    assert code == 0, err
    assert result["version"] == 1 and result["gate"]["passed"] and result["parent"] == "toy/1"
    student = workspace.registry.load("toy-student", 1)
    assert student.flavour == "pytorch" and student.model.hidden == [16, 8] and student.twin is not None

    code, _, err = run_cli([*args[:5], "--method", "prune", *args[7:]], capsys)
    assert code == 2 and "Pruning needs a TabularNet" in err
    code, _, err = run_cli([*args[:4], "toy", "--method", "int4", *args[7:]], capsys)
    assert code == 2 and "Unknown optimisation 'int4'" in err
    code, _, err = run_cli([*args[:11], "--target", "label", *args[13:]], capsys)
    assert code == 2 and "lack column(s) ['label']" in err
