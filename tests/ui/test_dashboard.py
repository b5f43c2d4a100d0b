"""The dashboard in a real headless Chromium against a real ``mloop serve``: sign-in with an API key for an HttpOnly,
SameSite=Strict cookie, every view on a workspace with a canary in flight, a drifting monitor and 10,002 runs, an
operator's change through a confirmed dry run (CSRF token sent), live updates without reload, keyboard navigation,
a viewer's refusals, no console errors and no request beyond the server. Screenshots go to build/test-artifacts/ui."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mloop.demo._server_process import ServerProcess
from mloop.monitoring import register_monitor
from mloop.serving import Rollouts
from mloop.workspace import Workspace
from tests.browser import CHROMIUM, FLAGS
from tests.conftest import make_deployed, train_and_register
from tests.ui.bulk import bulk_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(os.environ.get("MLOOP_TEST_ARTIFACTS", "build/test-artifacts")) / "ui"


def _evidence(log_ratio: float) -> list[dict[str, Any]]:
    return [{"metric": "errors", "n_baseline": 900, "n_candidate": 100, "baseline": 0.05, "candidate": 0.05, "excess": 0.0,
             "log_ratio": log_ratio, "threshold": 2.94, "worse": False, "upper": 0.1, "tolerance": 0.0, "no_worse": False}]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ServerProcess, dict[str, str]]]:
    """A workspace with ``toy`` v1 served and v2 in a canary with three decisions, a monitor with twelve windows (the last
    three drifting, one alarm) and 10,002 runs; a server on it; an operator's and a viewer's key."""
    root = tmp_path_factory.mktemp("ui")
    ws = make_deployed(root / "ws")
    train_and_register(ws, alias=None, seed=5)
    rollouts = Rollouts(ws.registry, ws.store, ws.bus)
    row = rollouts.start("toy", 2, "canary", steps=[10, 50, 100], actor="test", reason="v2 looked better offline")
    for i, ratio in enumerate((0.4, 1.1, 0.7)):
        rollouts.record(row, {"action": "wait", "reason": f"stage 10 %: {100 * (i + 1)} candidate outcomes", "evidence": _evidence(ratio)}, actor="driver")
    monitor = register_monitor(ws.store, {"deployment": "toy", "name": "inputs", "window": {"kind": "hourly"},
                                                 "reference": {"first_predictions": 500}})
    start = time.time() - 12 * 3600
    for i in range(12):
        drift = i >= 9
        features = [{"name": n, "test": "ks", "statistic": 0.3 if drift and n == "x1" else 0.02, "p_value": 1e-6 if drift and n == "x1" else 0.6,
                     "p_value_adjusted": 3e-6 if drift and n == "x1" else 0.9, "effect_size": 0.4 if drift else 0.01, "measure": "wasserstein_sd",
                     "floor": 0.1, "drift": drift and n == "x1"} for n in ("x1", "x2", "x3")]
        ws.store.monitors.record_window(monitor.id, {}, start=start + i * 3600, end=start + (i + 1) * 3600, rows=500, drift=drift, alarm=i == 11,
                                        summary={"drift": drift, "share_drifted": 1 / 3 if drift else 0.0, "features": features}, report=None)
    bulk_runs(ws.root / "mlflow.db", 10_000)
    keys = {role: ws.store.api_keys.create(f"ui-{role}", role)[0] for role in ("viewer", "operator")}
    with ServerProcess(ws.root, log_file=root / "server.log", settings={"MLOOP_MONITOR_INTERVAL": "0", "MLOOP_ROLLOUT_INTERVAL": "0"}) as server:
        yield ws, server, keys


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing at /usr/bin/chromium; .ci/run installs it.")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Page:
    """A signed-in page that records console errors and every URL it asked for."""

    def __init__(self, browser: Any, server: ServerProcess, key: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = server.url
        self.page.goto(f"{server.url}/ui")
        self.page.wait_for_selector("#signin:not([hidden])")
        self.page.fill("#key", key)
        self.page.press("#key", "Enter")
        self.page.wait_for_selector("#nav:not([hidden])")

    def go(self, view: str, heading: str) -> Any:
        self.page.evaluate("view => { location.hash = view; }", f"#/{view}")
        self.page.wait_for_function("h => document.querySelector('#view h1') && document.querySelector('#view h1').textContent.startsWith(h)", arg=heading)
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_sees_every_view_and_acts_through_a_confirmed_dry_run(world: tuple[Workspace, ServerProcess, dict[str, str]],
                                                                          browser: Any) -> None:
    ws, server, keys = world
    ui = Page(browser, server, keys["operator"])
    page = ui.go("deployments", "Deployments")
    cookie = next(c for c in page.context.cookies() if c["name"] == "mloop_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and keys["operator"] not in cookie["value"]
    assert page.get_attribute("#view .split", "aria-label") == "baseline 90%, candidate 10%"
    ui.shot("deployments")

    page = ui.go("deployment/toy", "Deployment toy")
    assert page.locator("svg.chart line.boundary").count() == 1 and page.locator("svg.chart circle").count() == 3
    assert "v2 looked better offline" in page.inner_text("#view")
    ui.shot("deployment")
    page.click("button[data-key=act-pause]")
    dialog = page.wait_for_selector("dialog[open]")
    assert '"pause"' in dialog.inner_text() and ws.store.rollouts.live("toy").status == "active"  # the dry run changed nothing
    ui.shot("pause-plan")
    page.click("dialog button[value=yes]")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('pause')")  # done or refused
    assert page.inner_text("#status").startswith("pause: "), page.inner_text("#status")
    assert ws.store.rollouts.live("toy").status == "paused"  # the confirmed change went through (with the CSRF token)

    page = ui.go("deployments", "Deployments")  # a change made elsewhere shows up without a reload
    page.wait_for_function("() => document.querySelector('#view').textContent.includes('(paused)')")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys['operator']}"}) as api:
        assert api.post("/api/deployments/toy/rollout/resume").status_code == 200
    page.wait_for_function("() => document.querySelector('#view').textContent.includes('(active)')", timeout=15_000)

    page = ui.go("monitor/toy/inputs", "Monitor toy/inputs")
    assert page.locator("svg.chart circle.dot-drift").count() == 3 and page.locator("svg.chart circle.dot-alarm").count() == 1
    assert page.locator("#view table").nth(1).locator("tbody tr").count() == 3  # the newest window's features
    page.click("button[data-key=win-1]")
    page.wait_for_selector("button[data-key=win-1][aria-pressed=true]")
    ui.shot("monitor")

    for view, heading, text in [("monitors", "Monitors", "inputs"), ("loop", "The loop", "No retraining attempts"), ("models", "Models", "champion→v1"),
                                ("model/toy", "Model toy", "Card of version 2"), ("features", "Feature views", "no feature views")]:
        page = ui.go(view, heading)
        page.wait_for_function("t => document.querySelector('#view').textContent.includes(t)", arg=text)
        ui.shot(view.replace("/", "-"))

    page = ui.go("runs", "Runs")  # 10,002 runs, paged on the server
    assert page.inner_text("#runs-range") == "runs 1–50 of 10,002" and page.locator("#view tbody tr").count() == 50
    page.focus("button[data-key=next]")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#runs-range').textContent === 'runs 51–100 of 10,002'")
    assert page.evaluate("() => document.activeElement.dataset.key") == "next"  # focus survives the refresh
    page.select_option("#page-size", "200")
    page.wait_for_function("() => document.querySelectorAll('#view tbody tr').length === 200")
    ui.shot("runs")

    page.reload()  # a fresh load (the session cookie stays): the skip link, then the sections, from the keyboard
    page.wait_for_selector("#runs-range")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.view") == "deployments"
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash === '#/deployments'")
    assert ui.errors == [] and all(u.startswith(server.url) or u.startswith("data:") for u in ui.requests), (ui.errors, ui.requests)


def test_a_viewer_reads_but_cannot_change_and_a_forged_change_is_refused(world: tuple[Workspace, ServerProcess, dict[str, str]],
                                                                         browser: Any) -> None:
    _, server, keys = world
    ui = Page(browser, server, keys["viewer"])
    page = ui.go("deployment/toy", "Deployment toy")
    assert page.locator("button[data-key=act-promote]").is_disabled()
    ui.shot("viewer-deployment")
    no_csrf = page.evaluate("() => fetch('api/deployments/toy/rollout/pause', {method: 'POST'}).then(r => r.status)")
    assert no_csrf == 403  # a change with the cookie alone (what a forged cross-site request could send) is refused
    csrf = page.evaluate("() => fetch('ui/session').then(r => r.json()).then(s => s.csrf)")
    as_viewer = page.evaluate("t => fetch('api/deployments/toy/rollout/pause', {method: 'POST', headers: {'x-csrf-token': t}}).then(r => r.status)", csrf)
    assert as_viewer == 403  # with the token, the role still decides
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("() => fetch('api/deployments').then(r => r.status)") == 401
    ui.errors = [e for e in ui.errors if "403" not in e and "401" not in e]  # the refusals above were asked for
    assert ui.errors == []
