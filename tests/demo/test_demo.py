"""The demo on a seeded slice: what it decided, why, and that the same evidence gives the same decisions."""

from __future__ import annotations

import math

import mlflow
import pytest

from mloop.demo import DemoAction, DemoConfig, DemoResult, run_demo
from mloop.workspace import Workspace
from tests.browser import open_offline

pytestmark = pytest.mark.slow

CONFIG = DemoConfig(sample=0.04, trials=2, last_month=7)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = tmp_path_factory.mktemp("demo") / "ws"
    first = run_demo(ws, CONFIG)
    second = run_demo(ws, CONFIG)
    return ws, first, second


def _decisions(result: DemoResult) -> list[tuple[int, str]]:
    return [(a.month, a.kind) for a in result.actions]


def test_the_seeded_slice_takes_these_decisions(demo_runs) -> None:  # type: ignore[no-untyped-def]
    """The decisions themselves, in order: a regression here means the loop decides differently on the same data."""
    _, first, _ = demo_runs
    assert _decisions(first) == [
        (3, "retrain"), (3, "register"),  # 8 features drifted; the challenger beat v1 offline (AUC 0.631 vs 0.601)
        (4, "skip"),  # drift again while the canary gathers labels at 10 %
        (5, "advance"), (5, "promote"),  # the driver passed 10 %, then showed v2 within 0.01 Brier of v1 at 50 %: champion
        (5, "retrain"), (5, "reject"),  # the new challenger lost the offline gate
        (6, "skip"),  # within the two-month cool-down
        (7, "retrain"), (7, "reject"),
    ], [(a.month, a.kind, a.why) for a in first.actions]
    assert [a.version for a in first.actions if a.kind in ("register", "promote")] == [2, 2]


def test_each_decision_follows_from_its_evidence(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    windows = {w.month: w for w in first.windows}
    registered: set[int] = set()
    last_retrain = 0
    for a in first.actions:
        w = windows[a.month]
        if a.kind == "retrain":  # only on evidence, and never within the cool-down
            assert w.drift or w.concept_drift, a
            assert a.month - last_retrain >= 2, a
            assert a.evidence["drift_share"] == pytest.approx(w.drift_share)
            last_retrain = a.month
        elif a.kind == "skip":
            assert w.drift or w.concept_drift, a
            assert "cooling down" in a.why or "canary already running" in a.why or "too few" in a.why, a
        elif a.kind in ("register", "reject"):  # the offline gate: the challenger must not lose more than 0.002 AUC
            passed = a.evidence["challenger_auc"] >= a.evidence["champion_auc"] - 0.002
            assert passed == (a.kind == "register"), a
            if a.kind == "register":
                assert a.version is not None
                registered.add(a.version)
        elif a.kind in ("advance", "rollback", "promote"):  # only a registered challenger, judged by the driver on both arms' Brier loss
            assert a.version in registered, a
            e = a.evidence
            assert (e["log_ratio"] >= e["threshold"]) == (a.kind == "rollback"), a  # the always-valid test crossed, or not
            if a.kind == "advance":  # the stage's minimum of candidate labels
                assert e["candidate_n"] >= max(100, int(1000 * CONFIG.sample)), a
            if a.kind == "promote":  # the confidence sequence put the candidate within the tolerance, at the last stage
                assert e["upper"] < e["tolerance"] and e["share"] == 50, a
        else:
            pytest.fail(f"unknown action kind {a.kind!r}")


def test_what_was_served_matches_what_was_decided(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    champion = 1
    candidate: int | None = None
    for w in first.windows:
        month_actions = [a for a in first.actions if a.month == w.month]
        allowed = {champion} | ({candidate} if candidate else set())
        for a in month_actions:
            if a.kind == "promote":
                champion, candidate = a.version or champion, None
                allowed.add(champion)
            elif a.kind == "rollback":
                candidate = None
            elif a.kind == "register":
                candidate = a.version
                allowed.add(candidate)
        assert set(w.versions) <= allowed, (w.month, w.versions, allowed)
        assert champion in w.versions or any(a.kind == "promote" for a in month_actions), (w.month, w.versions)


def test_the_same_evidence_gives_the_same_decisions(demo_runs) -> None:  # type: ignore[no-untyped-def]
    """The replay is reproducible: a second run in the same workspace decides the same things on the same
    statistics; only the version numbers move on."""
    _, first, second = demo_runs
    assert _decisions(second) == _decisions(first)
    offset = min(v["version"] for v in second.versions) - min(v["version"] for v in first.versions)
    for a, b in zip(first.actions, second.actions, strict=True):
        assert (b.version - offset if b.version is not None else None) == a.version, (a, b)
        assert b.evidence.keys() == a.evidence.keys()
        for key in a.evidence:
            assert math.isclose(a.evidence[key], b.evidence[key], rel_tol=1e-9, abs_tol=1e-12), (key, a, b)


def test_the_walk_is_recorded(demo_runs) -> None:  # type: ignore[no-untyped-def]
    ws_path, first, second = demo_runs
    assert [w.month for w in first.windows] == [3, 4, 5, 6, 7]
    assert all(w.rows > 0 and w.labelled > 0 for w in first.windows)
    assert all(math.isfinite(w.auc_served) and 0.5 < w.auc_served <= 1 for w in first.windows)
    assert first.report.exists() and first.report.parent == ws_path.resolve() / "reports"
    assert set(first.phases) >= {"set-up", "search", "register", "server start", "replay", "monitor", "retrain", "report"}
    assert sum(first.phases.values()) <= first.seconds + 1e-6
    ws = Workspace.open(ws_path)
    mlflow.set_tracking_uri(ws.tracking_uri)  # stock MLflow sees what the demo tracked
    runs = mlflow.search_runs(experiment_names=["flights"])
    assert (runs["tags.mlflow.runName"] == "initial-jan-feb").sum() == 2
    assert runs["tags.mloop.dataset.training.sha256"].notna().all()
    retrains = sum(1 for a in first.actions + second.actions if a.kind == "retrain")
    assert (runs["tags.mlflow.runName"].str.startswith("retrain-month-")).sum() == retrains
    assert second.report != first.report and second.report.exists()
    assert min(v["version"] for v in second.versions) > max(v["version"] for v in first.versions)
    assert list((ws_path / "logs" / "archive").iterdir()), "the first replay's log was archived, not deleted"
    canary = [a for a in first.actions + second.actions if a.kind in ("advance", "promote", "rollback")]
    stored = [d for d in ws.store.rollouts.decisions("flights", last=100) if d.actor == "driver"]  # what the driver recorded
    assert [d.action for d in stored] == [a.kind for a in canary]
    for d, a in zip(stored, canary, strict=True):
        [loss] = d.decision["evidence"]
        assert (loss["n_candidate"], loss["baseline"]) == (a.evidence["candidate_n"], pytest.approx(a.evidence["baseline_loss"]))


def test_actions_are_plain_values() -> None:
    action = DemoAction(3, "retrain", None, "why", {"drift_share": 0.4})
    assert action.evidence == {"drift_share": 0.4} and action.kind == "retrain"


@pytest.mark.browser
def test_report_renders_offline_in_chromium(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    html = first.report.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html

    def inspect(page) -> None:  # type: ignore[no-untyped-def]
        assert page.title().startswith("mloop demo")
        assert page.locator("#timeline tr").count() == 1 + len(first.windows)
        assert page.locator("svg polyline").count() == 2
        assert page.locator("#mean-served").inner_text() != "—"

    errors, requests = open_offline(first.report, inspect)
    assert errors == []
    assert all(u.startswith("file://") for u in requests)
