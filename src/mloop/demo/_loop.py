"""``mloop demo``: one real walk round the loop on NYC flights of 2013.

train (Jan–Feb, Optuna) → register v1 as champion → deploy → serve over HTTP in a child process →
replay March–December as requests, labels fed back late → monitor each month (data drift, ADWIN on
the error stream) → on drift retrain on recent logged data → challenger vs champion on the same
holdout → canary → promote → HTML report.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mloop.demo._flights import SPEC, load_flights
from mloop.demo._server_process import ServerProcess
from mloop.errors import InvalidInput, Unavailable
from mloop.monitoring import LogReader
from mloop.monitoring.drift import ADWIN, DatasetDrift
from mloop.registry import LoadedModel
from mloop.rollout import Arm, Canary, Decision
from mloop.serving import Deployments
from mloop.training import auc, fit, tune
from mloop.workspace import Workspace

MODEL = "flights"
DEPLOYMENT = "flights"
EXPERIMENT = "flights"
MAX_TRAIN_ROWS = 120_000
_JSON = {"content-type": "application/json"}


@dataclass
class DemoConfig:
    """Knobs of the demo; the defaults are the full run (about two minutes on two cores)."""

    sample: float = 1.0
    trials: int = 8
    seed: int = 0
    batch_size: int = 0  # rows per request; 0 picks 250 × sample, so a month is ~110 requests at any sample
    label_delay: int = 6  # labels of a request arrive this many requests later
    first_month: int = 3
    last_month: int = 12

    def check(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise InvalidInput(f"sample must be within (0, 1], got {self.sample}.", field="sample")
        if self.trials < 1:
            raise InvalidInput(f"trials must be at least 1, got {self.trials}.", field="trials")
        if self.batch_size < 0:
            raise InvalidInput(f"batch_size must be at least 1 (or 0 for automatic), got {self.batch_size}.", field="batch_size")
        if not 3 <= self.first_month <= self.last_month <= 12:
            raise InvalidInput(
                f"months must satisfy 3 <= first_month <= last_month <= 12, got {self.first_month}..{self.last_month}.",
                field="months",
            )


@dataclass
class WindowResult:
    month: int
    rows: int
    labelled: int
    versions: dict[int, int]
    drift: bool
    drift_share: float
    drifted: list[str]
    effects: dict[str, float]
    p_values: dict[str, float]
    concept_drift: bool
    error_rate: float
    actions: list[str] = field(default_factory=list)
    auc_served: float = float("nan")
    auc_static: float = float("nan")


@dataclass(frozen=True)
class DemoAction:
    """One thing the demo's controller did, and the evidence it did it on.

    ``kind``: ``retrain`` (a trigger fired), ``skip`` (a trigger fired but a rule held it back), ``reject``
    (the challenger lost the offline gate), ``register`` (it passed and became the challenger), ``advance``
    (a canary step passed), ``rollback``, ``promote``."""

    month: int
    kind: str
    version: int | None
    why: str
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass
class DemoResult:
    workspace: Path
    report: Path
    windows: list[WindowResult]
    versions: list[dict[str, Any]]
    events: list[tuple[float, str]]
    seconds: float
    config: DemoConfig
    actions: list[DemoAction] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)


def _payload(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows as JSON-ready lists (NaN → null)."""
    values = frame.astype(object).to_numpy()
    mask = frame.isna().to_numpy()
    values[mask] = None
    return values.tolist()


class Clock:
    """Wall time per phase of the demo, exclusive: a phase nested in another counts only for itself."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [name, started, time spent in nested phases]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._stack.append([name, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            _, started, nested = self._stack.pop()
            spent = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - nested
            if self._stack:
                self._stack[-1][2] += spent


class _Controller:
    """The loop's brain for the demo: watches the log, decides retraining and drives the canary."""

    def __init__(
        self, ws: Workspace, cfg: DemoConfig, console: Console, reference: pd.DataFrame, params: dict[str, Any], champion: int, clock: Clock
    ) -> None:
        self.ws = ws
        self.deployments = Deployments(ws.registry, ws.store, ws.bus)
        self.client: httpx.Client | None = None
        self.cfg = cfg
        self.console = console
        self.reader = LogReader(ws.logs_dir)
        self.params = params
        self.champion = champion
        self.initial = reference
        self.drift = DatasetDrift().fit(reference[SPEC.features])
        self.adwin = ADWIN(delta=0.002, one_sided=True)
        self.label_cursor = 0.0
        self.canary: Canary | None = None
        self.canary_version: int | None = None
        self.step_started = 0.0
        self.last_retrain_month = 0
        self.events: list[tuple[float, str]] = []
        self.versions: list[dict[str, Any]] = []
        self.challenger_reference: pd.DataFrame | None = None
        self.actions: list[DemoAction] = []
        self.clock = clock
        self._champion_model: LoadedModel | None = None

    def note(self, message: str) -> None:
        self.events.append((time.time(), message))
        self.console.log(message)

    def act(self, actions: list[str], month: int, kind: str, text: str, version: int | None = None, *, log: bool = True, **evidence: float) -> None:
        """Record a decision: the sentence for the report, and the structured action with its evidence."""
        actions.append(text)
        self.actions.append(DemoAction(month, kind, version, text, {k: float(v) for k, v in evidence.items()}))
        if log:
            self.note(text)

    def champion_model(self) -> LoadedModel:
        """The champion, loaded (and verified) once per version."""
        if self._champion_model is None or self._champion_model.version != self.champion:
            self._champion_model = self.ws.registry.load(MODEL, self.champion)
        return self._champion_model

    def phase(self, name: str) -> Any:
        return self.clock.phase(name)

    # -- monitoring ---------------------------------------------------------------------------

    def monitor_window(self, month: int, since: float, until: float) -> WindowResult:
        window = self.reader.labelled(DEPLOYMENT, since=since, until=until)
        report = self.drift.score(window[SPEC.features])
        fresh = self.reader.labelled(DEPLOYMENT, labels_after=self.label_cursor)
        concept = False
        if len(fresh):
            self.label_cursor = float(fresh["label_ts"].max())
            losses = (fresh["score"].to_numpy() - fresh["label"].to_numpy()) ** 2
            for loss in losses:
                concept |= self.adwin.update(float(loss))
        labelled = window[window["label"].notna()]
        err = float(((labelled["score"] > 0.5).astype(int) != labelled["label"]).mean()) if len(labelled) else float("nan")
        return WindowResult(
            month=month,
            rows=len(window),
            labelled=len(labelled),
            versions={int(str(k)): int(v) for k, v in window["version"].value_counts().items()},
            drift=report.drift,
            drift_share=report.share_drifted,
            drifted=report.drifted(),
            effects={f.name: f.effect_size for f in report.features},
            p_values={f.name: f.p_value_adjusted for f in report.features},
            concept_drift=concept,
            error_rate=err,
        )

    # -- retraining ---------------------------------------------------------------------------

    def maybe_retrain(self, result: WindowResult, since: float) -> None:
        if not (result.drift or result.concept_drift):
            return
        why = " + ".join(
            ([f"data drift ({len(result.drifted)} features)"] if result.drift else []) + (["ADWIN alarm"] if result.concept_drift else [])
        )
        month = result.month
        if self.canary is not None:
            self.act(result.actions, month, "skip", f"{why}: canary already running", log=False)
            return
        if month - self.last_retrain_month < 2:
            self.act(result.actions, month, "skip", f"{why}: cooling down", log=False, months_since_retrain=month - self.last_retrain_month)
            return
        self.act(result.actions, month, "retrain", f"month {month}: {why} → retraining on recent labelled data",
                 drift_share=result.drift_share, concept_drift=float(result.concept_drift))
        with self.phase("retrain"):
            self._retrain(result, since, why)

    def _retrain(self, result: WindowResult, since: float, why: str) -> None:
        month = result.month
        logged = self.reader.labelled(DEPLOYMENT, since=0.0)  # one read; the recent window is a slice of it
        logged = logged[logged["label"].notna()]
        recent = logged[logged["ts"] >= since]
        if len(recent) < 200:
            self.act(result.actions, month, "skip", f"{why}: too few labelled rows to retrain", labelled=len(recent))
            return
        # Training data: the initial set plus every labelled row logged since, capped to the newest
        # MAX_TRAIN_ROWS; the holdout is the newest quarter of the recent window, never trained on.
        logged = logged.assign(late=lambda f: f["label"].astype(int))
        cumulative = pd.concat([self.initial[[*SPEC.features, SPEC.target]], logged[[*SPEC.features, SPEC.target]]], ignore_index=True)
        n_holdout = max(100, len(recent) // 4)
        train = cumulative.iloc[:-n_holdout].tail(MAX_TRAIN_ROWS)
        holdout = cumulative.iloc[-n_holdout:]
        champion = self.champion_model()
        with self.ws.tracker.start_run(EXPERIMENT, run_name=f"retrain-month-{result.month}", seed=self.cfg.seed, tags={"mloop.trigger": why}) as run:
            run.log_dataset(train[[*SPEC.features, SPEC.target]], context="training", name=f"prediction-log-recent-m{result.month}", targets=SPEC.target)
            run.log_dataset(holdout[[*SPEC.features, SPEC.target]], context="holdout", name=f"prediction-log-holdout-m{result.month}", targets=SPEC.target)
            model = fit(train, SPEC, self.params, self.cfg.seed)
            auc_challenger = auc(holdout[SPEC.target], model.predict_proba(holdout[SPEC.features])[:, 1])
            auc_champion = auc(holdout[SPEC.target], champion.score(holdout[SPEC.features]))
            run.log_params(self.params)
            run.log_metrics({"holdout_auc": auc_challenger, "champion_holdout_auc": auc_champion})
            uri = run.log_sklearn_model(model, train[SPEC.features])
        self.last_retrain_month = result.month
        if not auc_challenger >= auc_champion - 0.002:
            self.act(result.actions, month, "reject", f"challenger rejected: holdout AUC {auc_challenger:.3f} < champion {auc_champion:.3f}",
                     challenger_auc=auc_challenger, champion_auc=auc_champion)
            return
        info = self.ws.registry.register(uri, MODEL, alias="challenger")
        self.challenger_reference = train[SPEC.features]
        self.versions.append(
            {"version": info.version, "month": month, "rows": len(train), "holdout_auc": auc_challenger, "champion_auc": auc_champion, "trigger": why}
        )
        self.act(result.actions, month, "register",
                 f"v{info.version} registered as challenger (holdout AUC {auc_challenger:.3f} vs champion {auc_champion:.3f})",
                 info.version, challenger_auc=auc_challenger, champion_auc=auc_champion)
        min_samples = max(30, int(400 * self.cfg.sample))
        self.canary = Canary(steps=[10, 50, 100], min_samples=min_samples, tolerance=0.05)
        self.canary_version = info.version
        self._set_canary(self.canary.percent)

    # -- canary -------------------------------------------------------------------------------

    def deploy(self, rollout: dict[str, Any] | None = None) -> None:
        """Change the deployment and wait until the server applies it, so every later request meets the new
        policy (the replay stays reproducible)."""
        revision = self.deployments.deploy(DEPLOYMENT, MODEL, "champion", rollout=rollout).revision
        if self.client is None:
            return
        deadline = time.monotonic() + 30
        while self.client.get(f"/v2/models/{DEPLOYMENT}/stats").json().get("revision", 0) < revision:
            if time.monotonic() > deadline:
                raise Unavailable("The server did not apply the new deployment within 30 s; see server.log.")
            time.sleep(0.02)

    def _set_canary(self, percent: float) -> None:
        self.deploy({"candidate_alias": "challenger", "percent": percent, "strategy": "canary"})
        self.step_started = time.time()
        self.note(f"canary: v{self.canary_version} gets {percent:.0f}% of traffic")

    def check_canary(self, month: int, actions: list[str]) -> None:
        if self.canary is None:
            return
        with self.phase("canary"):
            self._check_canary(month, actions)

    def _check_canary(self, month: int, actions: list[str]) -> None:
        assert self.canary is not None
        rows = self.reader.labelled(DEPLOYMENT, since=self.step_started)
        rows = rows[rows["label"].notna()]
        self.canary.clear()
        losses = (rows["score"].to_numpy() - rows["label"].to_numpy()) ** 2
        for version, loss in zip(rows["version"].to_numpy(), losses, strict=True):
            self.canary.observe(Arm.CANDIDATE if int(version) == self.canary_version else Arm.BASELINE, float(loss))
        decision = self.canary.decision()
        if decision is Decision.ADVANCE:
            stats = self.canary.arm_stats()
            self.act(actions, month, "advance",
                     f"canary step {self.canary.percent:.0f}% passed (Brier {stats['candidate'][1]:.4f} vs {stats['baseline'][1]:.4f})",
                     self.canary_version, percent=self.canary.percent, candidate_brier=stats["candidate"][1], baseline_brier=stats["baseline"][1],
                     candidate_n=stats["candidate"][0], baseline_n=stats["baseline"][0], z=float(self.canary.history[-1]["z"]))
            percent = self.canary.advance()
            if self.canary.decision() is Decision.PROMOTE:
                self._promote(month, actions)
            else:
                self._set_canary(percent)
        elif decision is Decision.PROMOTE:
            self._promote(month, actions)
        elif decision is Decision.ROLLBACK:
            stats = self.canary.arm_stats()
            self.act(actions, month, "rollback", f"canary rolled back: v{self.canary_version} was worse", self.canary_version,
                     percent=self.canary.percent, candidate_brier=stats["candidate"][1], baseline_brier=stats["baseline"][1],
                     candidate_n=stats["candidate"][0], baseline_n=stats["baseline"][0], z=float(self.canary.history[-1]["z"]))
            self.deploy()
            self.canary = None

    def _promote(self, month: int, actions: list[str]) -> None:
        assert self.canary_version is not None
        self.ws.registry.set_alias(MODEL, "champion", self.canary_version)
        self.deploy()
        self.act(actions, month, "promote", f"v{self.canary_version} promoted to champion", self.canary_version)
        self.champion = self.canary_version
        if self.challenger_reference is not None:
            # The new champion was trained on recent data: that is the reference from now on.
            self.drift = DatasetDrift().fit(self.challenger_reference)
        self.canary = None


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
        static_model = ws.registry.load(MODEL, v1.version)

    # A fresh replay: earlier demo logs of this deployment are archived, never deleted.
    log_dir = ws.logs_dir / DEPLOYMENT
    if log_dir.exists():
        archive = ws.logs_dir / "archive" / f"{DEPLOYMENT}-{int(time.time())}"
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(log_dir), str(archive))

    controller = _Controller(ws, cfg, console, train, params, v1.version, clock)
    controller.versions = versions
    windows: list[WindowResult] = []
    server_log = ws.root / "server.log"
    request_month: dict[str, int] = {}
    server = ServerProcess(ws.root, log_file=server_log, event_poll_interval=0.05)  # each rollout change waits for the server
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
                    if controller.canary is not None and b % 10 == 9:
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


_SHORT = (
    (re.compile(r"^(v\d+) registered as challenger"), r"\1 challenger"),
    (re.compile(r"^(v\d+) promoted"), r"\1 promoted"),
    (re.compile(r"^canary rolled back: (v\d+)"), r"\1 rolled back"),
    (re.compile(r"^challenger rejected"), "challenger rejected"),
)


def short_action(action: str) -> str | None:
    """A few words for the summary table (the report has the full sentence); None for non-events."""
    for pattern, replacement in _SHORT:
        m = pattern.match(action)
        if m:
            return m.expand(replacement)
    return None


def summary_rows(result: DemoResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for w in result.windows:
        rows.append(
            (
                f"{w.month:02d}",
                f"{w.rows:,}",
                ", ".join(f"v{v}" for v in sorted(w.versions)),
                f"{w.drift_share:.0%}" + (" ⚠" if w.drift else ""),
                "yes" if w.concept_drift else "",
                f"{w.auc_static:.3f}",
                f"{w.auc_served:.3f}",
                ", ".join(a for a in map(short_action, w.actions) if a),
            )
        )
    return rows


__all__ = ["Clock", "DemoAction", "DemoConfig", "DemoResult", "WindowResult", "run_demo", "summary_rows"]
