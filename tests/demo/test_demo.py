"""The demo on a seeded slice: every decision is the server's, each follows from the evidence recorded with it, what
was served matches what was decided, and a person never had to step in."""

from __future__ import annotations

import math

import mlflow
import pytest

from mloop.automation import parse_loop_policy
from mloop.demo import DemoAction, DemoConfig, DemoResult, run_demo
from mloop.demo._watch import policy_document
from mloop.workspace import Workspace
from tests.browser import open_offline

pytestmark = pytest.mark.slow

# A tenth of the flights, a row a request (2,800 requests a month): blocks of 2,500 labelled predictions, about a month.
CONFIG = DemoConfig(sample=0.1, trials=2)
Z_95 = 1.6448536269514722  # the one-sided 5 % critical value of the performance trigger and the gate


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = tmp_path_factory.mktemp("demo") / "ws"
    first = run_demo(ws, CONFIG)
    second = run_demo(ws, DemoConfig(sample=0.1, trials=2, last_month=4))  # a second walk in the same workspace
    return ws, first, second


def test_the_loop_acted_and_every_step_was_automatic(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    assert len(first.attempts) >= 2, [a["trigger"] for a in first.attempts]
    assert {a["result"] for a in first.attempts} & {"promoted", "rejected_by_gate"}, [a["result"] for a in first.attempts]
    assert not any(a["human"] for a in first.attempts)
    auto, steps = first.steps_without_human
    assert auto == steps > 0


def test_each_attempt_follows_from_its_evidence(demo_runs) -> None:  # type: ignore[no-untyped-def]
    """The trigger, the gate and the rollout, each checked against the statistic it recorded."""
    ws_path, first, _ = demo_runs
    policy = parse_loop_policy(policy_document(CONFIG, {}, ws_path / "data" / "flights-jan-feb.parquet"))
    for a in first.attempts:
        trigger = a["trigger"]["detail"]
        assert a["trigger"]["kind"] == "performance" and trigger["dropped"], a
        assert trigger["rows"] == CONFIG.rows_per_block and trigger["z"] >= Z_95 and trigger["current"] < trigger["reference"], a
        steps = {s["name"]: s for s in a["steps"]}
        train = steps["train"]
        assert train["outcome"] == "ok", a
        window = train["detail"]["holdout_rows"] + train["detail"]["train_rows"]
        assert train["detail"]["holdout_rows"] == math.ceil((window - _base_rows(ws_path)) * policy.data.holdout), a
        gate = steps["gate"]["detail"]
        passed = gate["lower"] > policy.gate.min_effect
        assert (steps["gate"]["outcome"] == "ok") == passed, a
        assert gate["lower"] == pytest.approx(gate["difference"] - Z_95 * gate["std_error"]), a
        if not passed:
            assert a["result"] == "rejected_by_gate" and "rollout" not in steps, a
        elif a["result"] is not None:
            assert a["result"] in ("promoted", "rolled_back") and steps["rollout_end"]["detail"]["decided_by"] == "driver", a


def _base_rows(ws_path) -> int:  # type: ignore[no-untyped-def]
    import pandas as pd

    return len(pd.read_parquet(ws_path / "data" / "flights-jan-feb.parquet"))


def test_the_canary_decisions_follow_from_their_statistics(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    canary = [a for a in first.actions if a.kind in ("advance", "promote", "rollback")]
    assert any(a.kind == "promote" for a in canary), [a.why for a in first.actions]
    for a in canary:
        e = a.evidence
        assert e["errors.n_candidate"] >= 100, a  # each stage's minimum of candidate requests
        if a.kind == "promote":  # shown within the tolerance
            assert e["errors.upper"] < e["errors.tolerance"], a
        if a.kind == "rollback":
            assert e["errors.log_ratio"] >= e["errors.threshold"], a


def test_what_was_served_matches_what_was_decided(demo_runs) -> None:  # type: ignore[no-untyped-def]
    """Each month served its champion as the month began and, beside it, only a candidate under a canary."""
    _, first, _ = demo_runs
    champion, live = 1, None
    for w in first.windows:
        allowed, began = {champion} | ({live} if live else set()), champion
        for a in (a for a in first.actions if a.month == w.month):
            if a.kind == "canary":
                live = a.version
                allowed.add(live)  # type: ignore[arg-type]
            elif a.kind == "promote":
                champion, live = a.version, None  # type: ignore[assignment]
            elif a.kind == "rollback":
                live = None
        assert set(w.versions) <= allowed and began in w.versions, (w.month, w.versions, allowed)


def test_the_walk_is_recorded(demo_runs) -> None:  # type: ignore[no-untyped-def]
    ws_path, first, second = demo_runs
    assert [w.month for w in first.windows] == list(range(3, 13))
    assert all(w.rows > 0 and w.labelled == w.rows for w in first.windows)
    assert all(math.isfinite(w.auc_served) and 0.5 < w.auc_served <= 1 for w in first.windows)
    assert first.report.exists() and first.report.parent == ws_path.resolve() / "reports"
    assert set(first.phases) >= {"set-up", "search", "register", "server start", "replay", "wait for the loop", "score", "report"}
    assert sum(first.phases.values()) <= first.seconds + 1e-6
    promoted = [a for a in first.attempts if a["result"] == "promoted"]
    assert set(first.to_champion) == {a["id"] for a in promoted}
    assert all(t["rows"] > 0 and t["seconds"] > 0 for t in first.to_champion.values())
    ws = Workspace.open(ws_path)
    monitors = {m.name: m for m in ws.store.monitors.list("flights")}
    assert set(monitors) == {"inputs", "slices"}
    windows = ws.store.monitors.windows(monitors["inputs"].id, last=1000)  # the drift monitor watched the replay, window by window
    assert len(windows) >= 8 and any(w.drift for w in windows), [(w.rows, w.drift) for w in windows]
    sliced = ws.store.monitors.windows(monitors["slices"].id, last=1000)  # labelled windows, per origin and carrier
    assert sliced and {s["column"] for s in sliced[-1].summary["slices"]} == {"origin", "carrier"}
    assert set(sliced[-1].summary["fairness"]) == {"origin", "carrier"}
    mlflow.set_tracking_uri(ws.tracking_uri)  # stock MLflow sees what the demo and the loop tracked
    initial = mlflow.search_runs(experiment_names=["flights"])
    assert (initial["tags.mlflow.runName"] == "initial-jan-feb").sum() == 2
    loop_runs = mlflow.search_runs(experiment_names=["loop-flights"])
    attempts = {str(a["id"]) for a in first.attempts + second.attempts}
    assert set(loop_runs["tags.mloop.loop.attempt"]) == attempts
    # The second walk: the first replay's log archived, its attempts not counted again, versions numbered on.
    assert second.report != first.report and second.report.exists()
    assert [w.month for w in second.windows] == [3, 4]
    assert {a["id"] for a in second.attempts}.isdisjoint({a["id"] for a in first.attempts})
    assert min(v["version"] for v in second.versions) > max(v["version"] for v in first.versions)
    assert list((ws_path / "logs" / "archive").iterdir()), "the first replay's log was archived, not deleted"


def test_actions_are_plain_values() -> None:
    action = DemoAction(3, "trigger", 1, "why", {"z": 2.5}, attempt=1)
    assert action.evidence == {"z": 2.5} and action.kind == "trigger"
    assert DemoResult.__dataclass_fields__["attempts"].default_factory() == []  # type: ignore[misc]


@pytest.mark.browser
def test_report_renders_offline_in_chromium(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    html = first.report.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html

    def inspect(page) -> None:  # type: ignore[no-untyped-def]
        assert page.title().startswith("mloop demo")
        assert page.locator("#timeline tr").count() == 1 + len(first.windows)
        assert page.locator("#attempts-table tr").count() == 1 + len(first.attempts)
        assert page.locator("svg polyline").count() == 2
        assert page.locator("#mean-served").inner_text() != "—"
        auto, steps = first.steps_without_human
        assert page.locator("#no-human").inner_text() == f"{auto} / {steps}"

    errors, requests = open_offline(first.report, inspect)
    assert errors == []
    assert all(u.startswith("file://") for u in requests)
