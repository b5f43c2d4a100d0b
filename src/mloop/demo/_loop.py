"""``mloop demo``: one real walk round the loop on NYC flights of 2013, every decision taken inside the server.

train (Jan–Feb, Optuna) → register v1 as champion → deploy → serve over HTTP in a child process (its loop controller
and rollout driver on) → apply a drift monitor and a retraining policy through the API → replay March–December as
requests, labels fed back late → the controller sees the champion's AUC fall, retrains on recent logged data with
v1's recipe, gates the challenger against the champion on held-out rows and rolls it out through a canary that the
driver judges on the live loss → the demo reads the loop's records back and writes an HTML report.
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

from mloop.demo._flights import SPEC, load_flights
from mloop.demo._records import Clock, DemoConfig, DemoResult, WindowResult
from mloop.demo._server_process import ServerProcess
from mloop.demo._watch import DEPLOYMENT, EXPERIMENT, MODEL, await_loop, configure, read_back, slices_summary
from mloop.errors import Unavailable
from mloop.files import replacing
from mloop.monitoring import LogReader
from mloop.monitoring.drift import DatasetDrift
from mloop.serving import Deployments, Rollouts
from mloop.training import auc, fit, tune
from mloop.workspace import Workspace

_JSON = {"content-type": "application/json"}
#: The server's background work, faster than its defaults so that the replayed year takes minutes.
SERVER_SETTINGS = {"MLOOP_LOOP_INTERVAL": "0.5", "MLOOP_ROLLOUT_INTERVAL": "0.5", "MLOOP_MONITOR_INTERVAL": "1"}


def _payload(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-ready lists (NaN → null)."""
    values = frame.astype(object).to_numpy()
    mask = frame.isna().to_numpy()
    values[mask] = None
    return values.tolist()


def run_demo(workspace: str | Path | None = None, config: DemoConfig | None = None, console: Console | None = None) -> DemoResult:
    """Run the whole loop; returns what happened, what the server's loop decided, where the time went and where
    the HTML report is."""
    from mloop.demo._report import write_report

    cfg = config or DemoConfig()
    cfg.check()
    batch_size = cfg.batch_size or max(1, round(10 * cfg.sample))
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
        reference = ws.root / "data" / "flights-jan-feb.parquet"
        with replacing(reference) as tmp:
            train[[*SPEC.features, SPEC.target]].to_parquet(tmp, index=False)

    # 1. train and track -----------------------------------------------------------------------
    with clock.phase("search"), Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("Optuna search", total=cfg.trials)
        with ws.tracker.start_run(EXPERIMENT, run_name="initial-jan-feb", seed=cfg.seed) as run:
            run.log_dataset(train[[*SPEC.features, SPEC.target]], context="training", name="nycflights13-2013-01..02", targets=SPEC.target)
            run.describe(intended_use="Whether a scheduled flight from New York will arrive more than 15 minutes late, from what is known "
                                      "before departure (schedule, route, carrier, weather at the origin): a demonstration of mloop's loop.",
                         out_of_scope="Decisions about individual passengers or crews; airports and years outside NYC 2013.",
                         groups=["origin", "carrier"])

            def on_trial(number: int, value: float, params: dict[str, Any]) -> None:
                run.log_metrics({"trial_auc": value}, step=number)
                progress.advance(task)

            params, best = tune(train, SPEC, n_trials=cfg.trials, seed=cfg.seed, on_trial=on_trial)
            model = fit(train, SPEC, params, cfg.seed)
            run.log_params({**params, "trials": cfg.trials})
            run.log_metrics({"valid_auc": best})
            uri = run.log_sklearn_model(model, train[SPEC.features], labels=train[SPEC.target])
    with clock.phase("register"):
        v1 = ws.registry.register(uri, MODEL, alias="champion")
        console.log(f"registered {MODEL} v{v1.version} as champion (validation AUC {best:.3f})")
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

    reader = LogReader(ws.logs_dir)
    server_log = ws.root / "server.log"
    request_month: dict[str, int] = {}
    marks: list[tuple[float, int]] = []  # when each month's replay began
    server = ServerProcess(ws.root, log_file=server_log, event_poll_interval=0.05, settings=SERVER_SETTINGS)
    with clock.phase("server start"):
        server.start()
    with server, server.client(timeout=30.0) as client:
        console.log(f"serving on {server.url} (pid {server.proc.pid if server.proc else '?'}), its loop controller and rollout driver on")
        configure(client, reference, cfg, params)
        console.log(f"applied a drift monitor and a retraining policy (retrain when v{v1.version}'s AUC falls on a block of "
                    f"{cfg.rows_per_block:,} labelled predictions)")
        truth = _Labels(client, cfg.label_delay)
        seen = 0
        with clock.phase("replay"), Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task("replaying flights", total=len(later))
            for month in range(cfg.first_month, cfg.last_month + 1):
                rows = later[later["month"] == month]
                payload = _payload(rows[SPEC.features])
                labels = rows[SPEC.target].astype(int).tolist()
                progress.update(task, description=f"replaying month {month:2d}")
                marks.append((time.time(), month))
                for b, start in enumerate(range(0, len(rows), batch_size)):
                    rid = f"m{month:02d}-{b:05d}"
                    body = {"dataframe_split": {"columns": SPEC.features, "data": payload[start : start + batch_size]}}
                    resp = client.post(f"/models/{DEPLOYMENT}/invocations", content=orjson.dumps(body), headers={"X-Request-Id": rid, **_JSON})
                    if resp.status_code != 200:
                        raise Unavailable(f"The server answered {resp.status_code}: {resp.text[:200]}")
                    request_month[rid] = month
                    n = len(payload[start : start + batch_size])
                    truth.answered(rid, labels[start : start + n])
                    progress.advance(task, n)
                    if b % 50 == 49:
                        with clock.phase("wait for the loop"):
                            _hold_while_training(client)
                if month == cfg.last_month:
                    truth.drain()
                with clock.phase("wait for the loop"):
                    _wait_for_log(reader, marks[0][0], len(later[later["month"] <= month]), truth.sent)
                    await_loop(client, after=time.time())
                seen = _report_new(console, ws, marks, seen)
        with clock.phase("server stop"):
            if server.stop() not in (0, None):
                console.log("[yellow]the server did not stop cleanly; see server.log")
    # After SIGTERM the server flushed everything: read back what its loop did, and score every month.
    with clock.phase("score"):
        attempts, actions = read_back(ws, marks)
        full = reader.labelled(DEPLOYMENT)
        full["month"] = full["request_id"].map(request_month)
        drift = DatasetDrift().fit(train[SPEC.features])
        windows = [_window(month, full, later, drift, static_model) for month in range(cfg.first_month, cfg.last_month + 1)]
        for w in windows:
            w.actions = [a.why for a in actions if a.month == w.month]
        versions = [{"version": v1.version, "month": cfg.first_month - 1, "rows": len(train), "holdout_auc": best, "champion_auc": float("nan"),
                     "trigger": "initial (Optuna)", "result": "champion"}]
        versions += _versions(attempts, marks)
    slices = slices_summary(ws)
    if slices:
        console.log(slices)
    outcome = DemoResult(ws.root, Path(), windows, versions, _events(ws, marks), 0.0, cfg, actions, clock.seconds, attempts,
                         _to_champion(attempts, actions, full))
    with clock.phase("report"):
        outcome.report = write_report(outcome, ws.reports_dir)
    outcome.seconds = time.time() - started
    return outcome


def _hold_while_training(client: httpx.Client) -> None:
    """A retrain takes seconds here and minutes in production, while a replayed month is seconds here and a month in
    production: while the server's loop trains or gates a challenger, the replay waits, so that what the loop does is
    timed against the traffic as it would be in the world it replays."""
    flight = client.get(f"/api/deployments/{DEPLOYMENT}/loop").json()["in_flight"]
    if flight is not None and flight["step"] != "wait":
        await_loop(client, after=0.0)


def _report_new(console: Console, ws: Workspace, marks: list[tuple[float, int]], seen: int) -> int:
    """Print what the loop did since the last look; returns how many actions are printed now."""
    _, actions = read_back(ws, marks)
    for a in actions[seen:]:
        console.log(f"month {a.month:2d}: {a.why}")
    return len(actions)


def _window(month: int, full: pd.DataFrame, later: pd.DataFrame, drift: DatasetDrift, static_model: Any) -> WindowResult:
    """A month as served: its rows, versions, AUC with the loop and with v1 alone, and its inputs' drift from Jan–Feb."""
    part = full[full["month"] == month]
    labelled = part[part["label"].notna()]
    month_rows = later[later["month"] == month]
    report = drift.score(month_rows[SPEC.features])
    return WindowResult(
        month=month, rows=len(part), labelled=len(labelled),
        versions={int(str(k)): int(v) for k, v in part["version"].value_counts().items()},
        drift=report.drift, drift_share=report.share_drifted, drifted=report.drifted(),
        effects={f.name: f.effect_size for f in report.features}, p_values={f.name: f.p_value_adjusted for f in report.features},
        auc_served=auc(labelled["label"], labelled["score"].to_numpy()) if len(labelled) else float("nan"),
        auc_static=auc(month_rows[SPEC.target], static_model.score(month_rows[SPEC.features])),
    )


def _versions(attempts: list[dict[str, Any]], marks: list[tuple[float, int]]) -> list[dict[str, Any]]:
    """The versions the loop trained and sent live: each with the gate's statistic and how its attempt ended."""
    from mloop.demo._watch import month_at

    out = []
    for a in attempts:
        gate = next((s for s in a["steps"] if s["name"] == "gate" and s["outcome"] == "ok"), None)
        train = next((s for s in a["steps"] if s["name"] == "train" and s["outcome"] == "ok"), None)
        if gate is None or train is None:
            continue
        d = gate["detail"]
        out.append({"version": a["challenger"], "month": month_at(marks, gate["finished_at"]), "rows": d.get("refit", {}).get("rows", 0),
                    "holdout_auc": d["challenger"], "champion_auc": d["champion"], "trigger": f"attempt {a['id']} ({a['trigger']['kind']})",
                    "result": a["result"] or "in flight"})
    return out


def _events(ws: Workspace, marks: list[tuple[float, int]]) -> list[tuple[float, str]]:
    """The bus's events of this replay (alarms, attempts, rollout decisions, alias moves), for the report."""
    began = marks[0][0]
    events = []
    for e in ws.bus.poll(0, limit=100_000):
        if e.created_at >= began and e.payload.get("deployment", DEPLOYMENT) == DEPLOYMENT:
            summary = ", ".join(f"{k}={v}" for k, v in e.payload.items() if isinstance(v, (str, int, float)) and k != "deployment")
            events.append((e.created_at, f"{e.topic} {summary}"[:300]))
    return events


def _to_champion(attempts: list[dict[str, Any]], actions: list[Any], full: pd.DataFrame) -> dict[int, dict[str, float]]:
    """For each promoted attempt: predictions served, and wall seconds, from the end of the evidence that triggered
    it to the new champion's promotion."""
    out = {}
    for a in attempts:
        promoted = next((x for x in actions if x.attempt == a["id"] and x.kind == "promote"), None)
        until = a["trigger"]["detail"].get("until")
        end = next((s["finished_at"] for s in a["steps"] if s["name"] == "rollout_end"), None)
        if promoted is None or until is None or end is None:
            continue
        rows = int(((full["ts"] > until) & (full["ts"] <= end)).sum())
        out[a["id"]] = {"rows": float(rows), "seconds": float(end - until)}
    return out


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
