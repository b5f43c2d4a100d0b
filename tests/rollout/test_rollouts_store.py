"""Policies set through the use case: validated, their versions checked, stored with history, and decisions recorded
with their statistics, atomically."""

from __future__ import annotations

import numpy as np
import pytest

from mloop.errors import Conflict, InvalidInput
from mloop.events import DEPLOYMENT_CHANGED
from mloop.rollout import Action, CanaryPolicy, build_policy, parse_policy
from mloop.serving import Rollouts
from mloop.workspace import Workspace
from tests.conftest import train_and_register


@pytest.fixture
def rollouts(deployed: Workspace) -> Rollouts:
    train_and_register(deployed, alias="challenger", seed=5)  # version 2 beside version 1
    return Rollouts(deployed.registry, deployed.store, deployed.bus)


def test_a_policy_naming_an_unknown_version_or_a_bad_share_is_refused_and_nothing_is_stored(rollouts: Rollouts) -> None:
    for document, field in [
        ({"policy": "canary", "baseline": "1", "candidate": "9"}, "candidate"),
        ({"policy": "canary", "baseline": "1", "candidate": "challenger"}, "candidate"),
        ({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [1, 250, 100]}, "steps"),
        ({"policy": "bandit", "arms": ["1", "2", "7"]}, "arms.2"),
    ]:
        with pytest.raises(InvalidInput) as info:
            rollouts.set("toy", document)
        assert info.value.field == field
    assert rollouts.store.rollouts.history("toy") == []


def test_policies_keep_their_history_and_decisions_their_statistics(rollouts: Rollouts) -> None:
    store, bus = rollouts.store, rollouts.bus
    seen = bus.last_id()
    first = rollouts.set("toy", {"policy": "canary", "baseline": "1", "candidate": "2", "steps": [50, 100], "min_samples": 50},
                         actor="alice", reason="try v2")
    assert first.revision == 1 and first.status == "active" and first.document["candidate"] == "2"
    assert [e.topic for e in bus.poll(seen)] == [DEPLOYMENT_CHANGED]
    spec = parse_policy(first.document)
    policy = build_policy(spec)
    assert isinstance(policy, CanaryPolicy)
    rng = np.random.default_rng(0)
    for i in range(3000):
        arm, _ = policy.route(f"k{i}")
        policy.observe(arm, "errors", float(rng.random() < (0.3 if arm == "candidate" else 0.05)))
    decision = policy.decide(now=0.0)
    assert decision.action is Action.ROLLBACK
    rollouts.record(first, decision.to_dict(), state={"stage": policy.stage}, actor="driver", status="rolled_back")
    [stored] = store.rollouts.decisions("toy")
    assert stored.action == "rollback" and stored.actor == "driver"
    assert stored.decision["evidence"][0]["log_ratio"] >= stored.decision["evidence"][0]["threshold"]
    assert store.rollouts.live("toy") is None and store.rollouts.history("toy")[0].status == "rolled_back"
    with pytest.raises(Conflict, match="has ended \\(rolled_back\\)"):
        rollouts.record(first, decision.to_dict(), state=None, actor="driver")
    second = rollouts.set("toy", {"policy": "blue-green", "active": "1", "standby": "2"}, actor="bob", reason="stay on v1")
    third = rollouts.set("toy", {"policy": "bandit", "arms": ["1", "2"]}, actor="bob", reason="explore")
    history = store.rollouts.history("toy")
    assert [(p.revision, p.kind, p.status, p.actor) for p in history] == [
        (1, "canary", "rolled_back", "alice"), (2, "blue-green", "replaced", "bob"), (3, "bandit", "active", "bob"),
    ]
    assert store.rollouts.live("toy") == third and second.reason == "stay on v1"
    assert [e.action for e in store.audit.list(target="toy") if e.action.startswith("rollout.")] == [
        "rollout.policy_set", "rollout.rollback", "rollout.policy_set", "rollout.policy_set",
    ]


@pytest.mark.slow
def test_the_server_routes_by_the_live_policy_and_logs_each_arm_with_its_probability(deployed: Workspace) -> None:
    """A stored canary at its first stage sends its share to the candidate, sticky by X-Routing-Key; each log row
    names the arm and the probability it had; a blue-green policy then sends everything to its active version."""
    import time

    from fastapi.testclient import TestClient

    from mloop.monitoring import LogReader
    from mloop.server import create_app
    from tests.conftest import TOY_SPEC, auth_headers, toy_frame

    train_and_register(deployed, alias="challenger", seed=5)
    rollouts = Rollouts(deployed.registry, deployed.store, deployed.bus)
    rollouts.set("toy", {"policy": "canary", "baseline": "1", "candidate": "2", "steps": [30, 100]})
    rows = toy_frame(1, seed=9)[list(TOY_SPEC.features)]
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    app = create_app(deployed, log_flush_interval=0.05, poll_interval=0.05)
    with TestClient(app, headers=auth_headers(deployed)) as client:
        stats = client.get("/v2/models/toy/stats").json()["rollout"]
        assert stats["policy"] == "canary r1" and stats["arms"] == [
            {"arm": "candidate", "version": 2, "weight": 0.3}, {"arm": "baseline", "version": 1, "weight": 0.7},
        ]
        answers = [client.post("/invocations", json=body, headers={"X-Routing-Key": f"user-{i % 50}", "X-Request-Id": f"q{i}"})
                   for i in range(200)]
        by_user: dict[str, set[str]] = {}
        for i, answer in enumerate(answers):
            by_user.setdefault(f"user-{i % 50}", set()).add(answer.headers["x-model-version"])
        assert all(len(v) == 1 for v in by_user.values())  # sticky
        assert {"1", "2"} == set().union(*by_user.values())
        rollouts.set("toy", {"policy": "blue-green", "active": "2", "standby": "1"}, reason="switch")
        deadline = time.time() + 10
        while client.get("/v2/models/toy/stats").json()["rollout"]["policy"] != "blue-green r2" and time.time() < deadline:
            time.sleep(0.05)
        assert {client.post("/invocations", json=body, headers={"X-Routing-Key": f"user-{i}"}).headers["x-model-version"]
                for i in range(30)} == {"2"}
    frame = LogReader(deployed.logs_dir).predictions("toy")
    canary = frame[frame["request_id"].str.startswith("q")]
    assert set(canary["arm"]) == {"candidate", "baseline"}
    assert set(zip(canary["arm"], canary["probability"], canary["version"], strict=True)) == {("candidate", 0.3, 2), ("baseline", 0.7, 1)}


@pytest.mark.slow
def test_the_rollout_api_starts_follows_and_promotes_with_roles(deployed: Workspace) -> None:
    from fastapi.testclient import TestClient

    from mloop.server import create_app

    train_and_register(deployed, alias="challenger", seed=5)
    viewer = {"Authorization": f"Bearer {deployed.store.api_keys.create('v', 'viewer')[0]}"}
    operator = {"Authorization": f"Bearer {deployed.store.api_keys.create('o', 'operator')[0]}"}
    with TestClient(create_app(deployed, poll_interval=0.05, monitor_interval=0)) as client:
        body = {"version": 2, "strategy": "canary", "steps": [20, 100], "reason": "v2 looks better offline"}
        assert client.post("/api/deployments/toy/rollout", json=body, headers=viewer).status_code == 403
        started = client.post("/api/deployments/toy/rollout", json=body, headers=operator)
        assert started.status_code == 201 and started.json()["document"]["candidate"] == "2"
        status = client.get("/api/deployments/toy/rollout", headers=viewer).json()
        assert status["live"]["weights"] == {"baseline": 0.8, "candidate": 0.2} and status["history"][0]["reason"] == "v2 looks better offline"
        now = status["live"]["now"]  # what the evidence says now: no outcome yet, so wait, with the boundary beside the statistic
        assert now["action"] == "wait" and now["reason"] == "0 of 100 candidate outcomes in this stage"
        assert [(e["metric"], e["log_ratio"], round(e["threshold"], 3)) for e in now["evidence"]] == [("errors", None, 2.996)]
        for bad, field in [({"version": 2, "strategy": "canary", "steps": [20, 300]}, "steps"), ({"version": 2, "strategy": "yolo"}, "strategy"),
                           ({"version": 2, "strategy": "canary", "percent": 250}, "percent")]:
            answer = client.post("/api/deployments/toy/rollout", json=bad, headers=operator)
            assert answer.status_code == 422 and field in answer.text
        assert client.post("/api/deployments/toy/rollout/promote", headers=viewer).status_code == 403
        plan = client.post("/api/deployments/toy/rollout/promote?dry_run=true", headers=operator)
        assert plan.status_code == 200 and plan.json()["would"]["promote"] == {"rollout": 1, "kind": "canary", "serve": 2, "instead_of": 1}
        assert client.get("/api/deployments/toy/rollout", headers=viewer).json()["live"]["status"] == "active"  # the dry run changed nothing
        assert client.post("/api/deployments/toy/rollout/demote", headers=operator).status_code == 422
        promoted = client.post("/api/deployments/toy/rollout/promote", headers=operator)
        assert promoted.status_code == 200 and promoted.json() == {"deployment": "toy", "action": "promote", "serves": 2, "status": None}
        assert client.post("/api/deployments/toy/rollout/pause", headers=operator).status_code == 404  # nothing live
        document = {"policy": "canary", "baseline": "2", "candidate": "1", "steps": [10, 100], "min_seconds": 0,
                    "metrics": {"errors": {}, "latency": {"tau": 0.1, "tolerance": 0.1}}, "reason": "back to v1, watched"}
        for bad, field in [({**document, "metrics": {"accuracy": {}}}, "metrics"), ({**document, "candidate": "9"}, "candidate"),
                           ({**document, "policy": "yolo"}, "policy"), ({**document, "reason": ["x"]}, "reason")]:
            answer = client.put("/api/deployments/toy/rollout", json=bad, headers=operator)
            assert answer.status_code == 422 and field in answer.json()["error"], answer.text
        assert client.put("/api/deployments/toy/rollout", json=document, headers=viewer).status_code == 403
        put = client.put("/api/deployments/toy/rollout", json=document, headers=operator)
        assert put.status_code == 201 and put.json()["document"]["metrics"]["latency"]["tau"] == 0.1
        assert client.get("/api/deployments/toy/rollout", headers=viewer).json()["history"][-1]["reason"] == "back to v1, watched"
        assert client.post("/api/deployments/toy/rollout/rollback", headers=operator).json()["serves"] == 2
        assert client.get("/api/deployments/nope/rollout", headers=viewer).status_code == 404
        paths = client.get("/openapi.json", headers=viewer).json()["paths"]
        assert {"/api/deployments/{name}/rollout", "/api/deployments/{name}/rollout/{action}"} <= set(paths)
    audit = [e for e in deployed.store.audit.list(target="toy") if e.action.startswith("rollout.")]
    assert [e.action for e in audit] == ["rollout.policy_set", "rollout.promote", "rollout.policy_set", "rollout.rollback"]
    assert audit[-1].actor == "api_key:o"
