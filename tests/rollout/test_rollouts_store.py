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
