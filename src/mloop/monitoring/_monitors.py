"""Monitors at work: each tick evaluates every window that has closed since the last one, applies the
k-of-n persistence rule, and raises or resolves alarms (alert log, event bus, Prometheus, webhooks).

``MonitorRunner.tick`` does the work; ``MonitorScheduler`` calls it from a thread of its own (never the
server's event loop) while holding a lease in the metadata database, so that of several server processes
exactly one evaluates monitors at a time, and another takes over within ``3 × interval`` if it dies.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop._background import LeasedLoop
from mloop.data import read_table
from mloop.errors import InvalidInput, MloopError
from mloop.events import DRIFT_DETECTED, DRIFT_RESOLVED, EventBus
from mloop.monitoring._charts import line_chart
from mloop.monitoring._drift_report import render, summary, write_html
from mloop.monitoring._freshness import judge_freshness
from mloop.monitoring._log import LOG_FIELDS, LogReader
from mloop.monitoring._monitor_config import MonitorConfig, parse_monitor
from mloop.monitoring._webhooks import deliver
from mloop.monitoring.drift import DatasetDrift, DriftReport, detector
from mloop.store import AlertLog, MetadataStore, MonitorRow

log = logging.getLogger("mloop.monitoring")

LEASE = "monitor-scheduler"
LOG_COLUMNS = frozenset({*LOG_FIELDS, "label", "label_ts"})
MAX_WINDOWS_PER_TICK = 100


class MonitorMetrics:
    """Prometheus series of the monitors, on the registry of the process that runs them."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.windows = Counter("mloop_monitor_windows", "Monitor windows evaluated", ["deployment", "monitor", "drift"], registry=registry)
        self.alarm = Gauge("mloop_monitor_alarm", "1 while the monitor is in alarm", ["deployment", "monitor"], registry=registry)
        self.alarms = Counter("mloop_monitor_alarms", "Alarms raised", ["deployment", "monitor"], registry=registry)
        self.share = Gauge("mloop_drift_share", "Share of drifted features in the latest window", ["deployment", "monitor"], registry=registry)
        self.statistic = Gauge("mloop_drift_statistic", "Test statistic of the latest window", ["deployment", "monitor", "feature", "test"], registry=registry)
        self.p_value = Gauge("mloop_drift_p_value_adjusted", "Adjusted p-value of the latest window", ["deployment", "monitor", "feature"], registry=registry)
        self.detections = Counter("mloop_concept_drift_detections", "Concept drift detections", ["deployment", "monitor", "detector"], registry=registry)


@dataclass
class WindowResult:
    """What one evaluated window decided."""

    deployment: str
    monitor: str
    start: float
    end: float
    rows: int
    drift: bool
    alarm: bool
    report: str | None = None
    drifted: list[str] = field(default_factory=list)


@dataclass
class _Fitted:
    key: str
    reference: pd.DataFrame
    detector: DatasetDrift
    after: tuple[float, str, int] | None  # a log-based reference: windows start after its last row


def _cursor(frame: pd.DataFrame) -> tuple[float, str, int]:
    last = frame.iloc[-1]
    return (float(last["ts"]), str(last["request_id"]), int(last["row"]))


class MonitorRunner:
    """Evaluates the monitors of one workspace (its metadata store, event bus, prediction log and reports folder)."""

    def __init__(
        self,
        store: MetadataStore,
        bus: EventBus,
        logs_dir: Path,
        reports_dir: Path,
        *,
        metrics: MonitorMetrics | None = None,
        webhook_allow: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        feature_ages: Callable[[str | None, list[str] | None], dict[str, float | None]] | None = None,
        attribution: Callable[[str, pd.DataFrame, pd.DataFrame], dict[str, Any] | None] | None = None,
        docs_dir: Path | None = None,
    ) -> None:
        """``feature_ages(service, views)`` gives the age in seconds of each view's newest materialised row (the listed
        views, or the service's); freshness monitors need it. ``attribution(deployment, reference, window)`` says which
        input columns moved the model's mean output (``AttributionShift.to_dict()``); drift windows report it. The
        serving layer hands both in."""
        self.store = store
        self.attribution = attribution
        self.docs_dir = docs_dir  # an alarm's drift analysis is written here
        self.feature_ages = feature_ages
        self.bus = bus
        self.reader = LogReader(logs_dir)
        self.reports_dir = reports_dir
        self.metrics = metrics
        self.webhook_allow = tuple(webhook_allow)
        self.clock = clock
        self._fitted: dict[int, _Fitted] = {}
        self._streams: dict[int, tuple[str, Any]] = {}
        self._hooks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mloop-webhook")

    def close(self) -> None:
        self._hooks.shutdown(wait=True)

    # -- the tick ------------------------------------------------------------------------------

    def tick(self) -> list[WindowResult]:
        """Evaluate every window that closed since the last tick, for every monitor; a monitor that fails
        (say its reference file vanished) records the error in its state and the others go on."""
        results: list[WindowResult] = []
        for row in self.store.monitors.list():
            try:
                config = parse_monitor(row.config)
                if config.freshness is not None:
                    results += self._freshness(row, config)
                elif config.performance is not None:
                    results += self._performance(row, config)
                elif config.window is not None and config.window.kind == "streaming":
                    results += self._stream(row, config)
                else:
                    results += self._windows(row, config)
            except Exception as exc:  # one broken monitor (bad reference, unreadable segment) must not starve the rest
                message = exc.message if isinstance(exc, MloopError) else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, MloopError):
                    log.warning("monitor %s/%s: %s", row.deployment, row.name, message)
                else:
                    log.exception("monitor %s/%s failed", row.deployment, row.name)
                state = self.store.monitors.state(row.id)
                if state.get("error") != message:
                    self.store.monitors.save_state(row.id, {**state, "error": message})
        return results

    # -- data and prediction drift over closed windows -------------------------------------------

    def _reference(self, row: MonitorRow, config: MonitorConfig) -> _Fitted | None:
        key = repr(row.config)
        cached = self._fitted.get(row.id)
        if cached is not None and cached.key == key:
            return cached
        assert config.reference is not None
        after = None
        if config.reference.path is not None:
            reference = read_table(Path(config.reference.path))
        else:
            reference = self.reader.predictions(row.deployment, limit=config.reference.first_predictions)
            if len(reference) < (config.reference.first_predictions or 0):
                return None  # not enough predictions yet to stand for normal
            after = _cursor(reference)
        features = config.features or [str(c) for c in reference.columns if c not in LOG_COLUMNS]
        missing = [f for f in features if f not in reference.columns]
        if missing:
            raise InvalidInput(f"The reference lacks feature(s) {missing}.", field="features")
        prediction = "score" if config.predictions and "score" in reference.columns else None
        columns = features + ([prediction] if prediction else [])
        fitted = DatasetDrift(
            alpha=config.alpha, correction=config.correction, floors=config.floors,
            drift_share=config.drift_share, tests=config.tests, prediction=prediction,
        ).fit(reference[columns])
        self._fitted[row.id] = found = _Fitted(key, reference[columns], fitted, after)
        return found

    def _next_window(
        self, row: MonitorRow, config: MonitorConfig, state: dict[str, Any], horizon: float, after: tuple[float, str, int] | None
    ) -> tuple[pd.DataFrame, float, float, dict[str, Any]] | None:
        cursor = tuple(state["cursor"]) if "cursor" in state else after
        assert config.window is not None
        if config.window.kind == "count":
            size = config.window.size or 0
            if cursor is not None and self.reader.count(row.deployment, since=cursor[0]) < size:
                return None  # not a whole window yet: a count of the recent segments, not a read of their inputs
            frame = self.reader.predictions(row.deployment, after=cursor, until=horizon, limit=size)  # type: ignore[arg-type]
            if len(frame) < size:
                return None
            return frame, float(frame["ts"].iloc[0]), float(frame["ts"].iloc[-1]), {"cursor": list(_cursor(frame))}
        seconds = config.window.seconds or 3600.0
        start = state.get("next_start")
        if start is None:
            first = self.reader.predictions(row.deployment, after=cursor, until=horizon, limit=1)  # type: ignore[arg-type]
            if first.empty:
                return None
            start = math.floor(float(first["ts"].iloc[0]) / seconds) * seconds
        end = start + seconds
        if end > horizon:
            return None
        frame = self.reader.predictions(row.deployment, since=start, until=end, after=cursor)  # type: ignore[arg-type]
        following = self.reader.predictions(row.deployment, since=end, until=horizon, limit=1)
        next_start = math.floor(float(following["ts"].iloc[0]) / seconds) * seconds if not following.empty else end
        return frame, start, end, {"next_start": next_start, **({"cursor": list(_cursor(frame))} if not frame.empty else {})}

    def _windows(self, row: MonitorRow, config: MonitorConfig) -> list[WindowResult]:
        fitted = self._reference(row, config)
        if fitted is None:
            return []
        horizon = self.clock() - config.grace_seconds  # rows still in a server's buffer are younger than this
        results = []
        state = self.store.monitors.state(row.id)  # this thread holds the lease: the stored state only changes here
        for _ in range(MAX_WINDOWS_PER_TICK):
            found = self._next_window(row, config, state, horizon, fitted.after)
            if found is None:
                break
            frame, start, end, moved = found
            state = {k: v for k, v in {**state, **moved}.items() if k != "error"}
            if frame.empty:  # a calendar window without predictions: nothing to test
                self.store.monitors.save_state(row.id, state)
                continue
            results.append(self._evaluate(row, config, fitted, frame, start, end, state))
        return results

    def _evaluate(
        self, row: MonitorRow, config: MonitorConfig, fitted: _Fitted, frame: pd.DataFrame, start: float, end: float, state: dict[str, Any]
    ) -> WindowResult:
        report = fitted.detector.score(frame)
        drift = report.drift or bool(report.prediction and report.prediction.drift)
        history = self.store.monitors.windows(row.id, last=max(config.persistence.n - 1, 1))
        recent = [w.drift for w in history][-(config.persistence.n - 1):] if config.persistence.n > 1 else []
        alarm = sum(recent) + drift >= config.persistence.k
        was_alarm = bool(history and history[-1].alarm)
        result = WindowResult(row.deployment, row.name, start, end, len(frame), drift, alarm, drifted=report.drifted())
        body = summary(report)
        attribution = self._attribute(row, fitted, frame)
        if attribution is not None:
            body["attribution"] = attribution
        window_id = self.store.monitors.record_window(row.id, state, start=start, end=end, rows=len(frame), drift=drift, alarm=alarm, summary=body, report=None)
        if config.reports:
            result.report = str(self._write_report(row, fitted, frame, report, window_id, start, end, attribution))
            self.store.monitors.set_report(window_id, result.report)
        self._observe(row, report, drift, alarm)
        if alarm and not was_alarm:
            self._alarm(row, config, result, "data_drift", body)
        elif was_alarm and not alarm:
            self._resolve(row, config, result)
        return result

    def _attribute(self, row: MonitorRow, fitted: _Fitted, frame: pd.DataFrame) -> dict[str, Any] | None:
        """The shift of the window's predictions attributed to columns; None without an attributor, or when it fails
        (the window is still judged on its drift tests)."""
        if self.attribution is None:
            return None
        try:
            return self.attribution(row.deployment, fitted.reference, frame)
        except Exception as exc:  # noqa: BLE001 - attribution adds to a report, it never blocks the decision
            log.warning("monitor %s/%s: no attribution (%s: %s)", row.deployment, row.name, type(exc).__name__, exc)
            return None

    def _write_report(self, row: MonitorRow, fitted: _Fitted, frame: pd.DataFrame, report: DriftReport, window_id: int, start: float, end: float,
                      attribution: dict[str, Any] | None = None) -> Path:
        import datetime as dt

        history = self.store.monitors.windows(row.id, last=30)
        labels = [dt.datetime.fromtimestamp(w.end, dt.UTC).strftime("%m-%d %H:%M") for w in history]
        timeline = line_chart(
            labels,
            {"share of features drifted": [float(w.summary.get("share_drifted", 0.0)) for w in history],
             "window drifted (1 = yes)": [float(w.drift) for w in history]},
            title=f"Last {len(history)} windows of {row.name}", y_label="share",
        )
        when = f"{dt.datetime.fromtimestamp(start, dt.UTC):%Y-%m-%d %H:%M:%S} – {dt.datetime.fromtimestamp(end, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
        html = render(fitted.reference, frame, report, fitted=fitted.detector, timeline=timeline, attribution=attribution,
                      title=f"{row.deployment} / {row.name}: window {window_id} ({when})")
        return write_html(self.reports_dir / "monitors" / row.deployment / row.name / f"window-{window_id:06d}.html", html)

    def _observe(self, row: MonitorRow, report: DriftReport, drift: bool, alarm: bool) -> None:
        if self.metrics is None:
            return
        m, dep, name = self.metrics, row.deployment, row.name
        m.windows.labels(dep, name, str(drift).lower()).inc()
        m.share.labels(dep, name).set(report.share_drifted)
        m.alarm.labels(dep, name).set(1.0 if alarm else 0.0)
        for f in [*report.features, *([report.prediction] if report.prediction else [])]:
            m.statistic.labels(dep, name, f.name, f.test).set(f.statistic)
            m.p_value.labels(dep, name, f.name).set(f.p_value_adjusted)

    # -- concept drift on the labelled loss stream -----------------------------------------------

    def _stream(self, row: MonitorRow, config: MonitorConfig) -> list[WindowResult]:
        assert config.concept is not None
        key = repr(row.config)
        found = self._streams.get(row.id)
        if found is None or found[0] != key:
            found = self._streams[row.id] = (key, detector(config.concept.detector, one_sided=config.concept.one_sided, **config.concept.params))
        watcher = found[1]
        state = self.store.monitors.state(row.id)
        after = float(state.get("labels_after", row.created_at))
        frame = self.reader.labelled(row.deployment, labels_after=after)
        if frame.empty:
            return []
        frame = frame.sort_values(["label_ts", "ts"], kind="stable")
        scores, labels = frame["score"].to_numpy(dtype=float), frame["label"].to_numpy(dtype=float)
        losses = (scores - labels) ** 2 if config.concept.loss == "brier" else ((scores >= 0.5) != (labels >= 0.5)).astype(float)
        results = []
        since = int(state.get("since", 0))
        for i, loss in enumerate(losses):
            since += 1
            if watcher.update(float(loss)):
                ts = float(frame["ts"].iloc[i])
                body = {"detector": config.concept.detector, "loss": config.concept.loss, "values_since_last": since,
                        "recent_mean_loss": float(np.mean(losses[max(0, i - 29): i + 1]))}
                result = WindowResult(row.deployment, row.name, float(frame["ts"].iloc[max(0, i - since + 1)]), ts, since, True, True)
                state = {"labels_after": float(frame["label_ts"].iloc[i]), "since": 0}
                self.store.monitors.record_window(row.id, state, start=result.start, end=ts, rows=since, drift=True, alarm=True, summary=body, report=None)
                since = 0
                if self.metrics is not None:
                    self.metrics.detections.labels(row.deployment, row.name, config.concept.detector).inc()
                self._alarm(row, config, result, "concept_drift", body)
                results.append(result)
        self.store.monitors.save_state(row.id, {"labels_after": float(frame["label_ts"].max()), "since": since})
        return results

    # -- accuracy per slice and fairness over labelled windows ------------------------------------

    def _performance(self, row: MonitorRow, config: MonitorConfig) -> list[WindowResult]:
        """Each whole window of labelled predictions (in the order their labels arrived; rows whose labels arrived
        together stay together) scored overall, per slice and for fairness; recorded with its report."""
        from mloop.monitoring._performance import performance_report

        assert config.performance is not None and config.window is not None
        perf, size = config.performance, config.window.size or 0
        state = self.store.monitors.state(row.id)
        after = float(state.get("labels_after", row.created_at))
        frame = self.reader.labelled(row.deployment, labels_after=after, labels_until=self.clock())
        if len(frame) < size:
            return []
        frame = frame.sort_values(["label_ts", "ts"], kind="stable").reset_index(drop=True)
        missing = [c for c in dict.fromkeys([*perf.groups, *perf.sensitive]) if c not in frame.columns]
        if missing:
            raise InvalidInput(f"The prediction log of {row.deployment!r} has no column(s) {missing} to slice by.", field="performance.groups")
        results = []
        start_row = 0
        while len(frame) - start_row >= size:
            end_row = start_row + size
            last = frame["label_ts"].iloc[end_row - 1]
            while end_row < len(frame) and frame["label_ts"].iloc[end_row] == last:
                end_row += 1
            window = frame.iloc[start_row:end_row]
            body = performance_report(window["score"].to_numpy(), window["label"].to_numpy(), window, groups=perf.groups,
                                      sensitive=perf.sensitive, bins=perf.bins, threshold=perf.threshold, min_rows=perf.min_rows)
            start, end = float(window["ts"].min()), float(window["ts"].max())
            state = {"labels_after": float(last)}
            window_id = self.store.monitors.record_window(row.id, state, start=start, end=end, rows=len(window), drift=False, alarm=False,
                                                          summary=body, report=None)
            result = WindowResult(row.deployment, row.name, start, end, len(window), False, False,
                                  drifted=[f"{s['column']}={s['value']}" for s in body["worst"]])
            if config.reports:
                from mloop.monitoring._performance_report import render_performance

                html = render_performance(body, title=f"{row.deployment} / {row.name}: window {window_id}")
                result.report = str(write_html(self.reports_dir / "monitors" / row.deployment / row.name / f"window-{window_id:06d}.html", html))
                self.store.monitors.set_report(window_id, result.report)
            if self.metrics is not None:
                self.metrics.windows.labels(row.deployment, row.name, "false").inc()
            results.append(result)
            start_row = end_row
        return results

    # -- feature freshness ----------------------------------------------------------------------

    def _freshness(self, row: MonitorRow, config: MonitorConfig) -> list[WindowResult]:
        """Judge the ages of the watched views now; an alarm when they turn stale, resolved when all are fresh again
        (each change recorded as a window with the ages that decided it)."""
        assert config.freshness is not None
        if self.feature_ages is None:
            raise InvalidInput("This process reads no feature store: freshness monitors run in `mloop serve` and `mloop monitors run`.",
                               field="freshness")
        service = self.store.deployments.get(row.deployment).serving.feature_service
        if config.freshness.views is None and service is None:
            raise InvalidInput(f"Deployment {row.deployment!r} fills in no feature service: list the views to watch under freshness.views.",
                               field="freshness.views")
        verdict = judge_freshness(self.feature_ages(service, config.freshness.views), config.freshness.max_age)
        was = bool(self.store.monitors.state(row.id).get("stale"))
        now = self.clock()
        state = {"stale": verdict.stale, "ages_s": verdict.ages, "checked": now}
        if self.metrics is not None:
            self.metrics.alarm.labels(row.deployment, row.name).set(1.0 if verdict.alarm else 0.0)
        if verdict.alarm == was:
            self.store.monitors.save_state(row.id, state)
            return []
        result = WindowResult(row.deployment, row.name, now, now, 0, verdict.alarm, verdict.alarm, drifted=verdict.stale)
        self.store.monitors.record_window(row.id, state, start=now, end=now, rows=0, drift=verdict.alarm, alarm=verdict.alarm,
                                          summary=verdict.to_dict(), report=None)
        if verdict.alarm:
            self._alarm(row, config, result, "feature_freshness", verdict.to_dict())
        else:
            self._resolve(row, config, result, kind="feature_freshness")
        return [result]

    # -- alarms ----------------------------------------------------------------------------------

    def _alarm(self, row: MonitorRow, config: MonitorConfig, result: WindowResult, kind: str, details: dict[str, Any]) -> None:
        payload = {
            "status": "firing", "kind": kind, "deployment": row.deployment, "monitor": row.name,
            "window": {"start": result.start, "end": result.end, "rows": result.rows},
            "drifted": result.drifted, "report": result.report, "details": details,
        }
        if kind == "data_drift":
            what = f"{len(result.drifted)} feature(s) drifted: {', '.join(result.drifted) or 'predictions'}"
        elif kind == "feature_freshness":
            what = f"feature view(s) {', '.join(result.drifted)} older than {details['max_age_s']:g} s or never materialised"
        else:
            what = f"{config.concept.detector if config.concept else 'detector'} saw the loss rise"
        with self.store.transaction() as conn:
            AlertLog.record(conn, row.deployment, kind, f"Monitor {row.name}: {what}.", details=payload)
            self.bus.publish(conn, DRIFT_DETECTED, payload)
        if kind in ("data_drift", "concept_drift"):
            self._analysis(row, config, payload, kind, details)
        if self.metrics is not None:
            self.metrics.alarms.labels(row.deployment, row.name).inc()
            self.metrics.alarm.labels(row.deployment, row.name).set(1.0)
        self._notify(config, payload)

    def _analysis(self, row: MonitorRow, config: MonitorConfig, payload: dict[str, Any], kind: str, details: dict[str, Any]) -> None:
        """The drift analysis of an alarm: method and thresholds, statistics, attribution, impact, what happens next."""
        if self.docs_dir is None:
            return
        try:
            from mloop.documents import DocumentStore, drift_analysis

            policies = [{"deployment": p.deployment, "triggers": p.document.get("triggers", {})} for p in self.store.loop.policies()
                        if p.deployment == row.deployment]
            DocumentStore(self.docs_dir).write(drift_analysis({
                "deployment": row.deployment, "monitor": row.name, "kind": kind, "window": payload["window"],
                "config": config.model_dump(), "summary": details, "report": payload.get("report"), "policies": policies,
            }))
        except Exception as exc:  # noqa: BLE001 - the alarm stands; its analysis is documentation
            log.warning("monitor %s/%s: no drift analysis (%s)", row.deployment, row.name, exc)

    def _resolve(self, row: MonitorRow, config: MonitorConfig, result: WindowResult, kind: str = "data_drift") -> None:
        payload = {"status": "resolved", "kind": kind, "deployment": row.deployment, "monitor": row.name,
                   "window": {"start": result.start, "end": result.end, "rows": result.rows}, "report": result.report}
        resolved = "drift_resolved" if kind == "data_drift" else f"{kind}_resolved"
        with self.store.transaction() as conn:
            AlertLog.record(conn, row.deployment, resolved, f"Monitor {row.name}: back to normal.", severity="info", details=payload)
            self.bus.publish(conn, DRIFT_RESOLVED, payload)
        self._notify(config, payload)

    def _notify(self, config: MonitorConfig, payload: dict[str, Any]) -> None:
        for url in config.webhooks:
            self._hooks.submit(deliver, url, payload, self.webhook_allow)


class MonitorScheduler(LeasedLoop):
    """Runs ``runner.tick()`` every ``interval`` seconds on a daemon thread while holding the lease."""

    def __init__(self, runner: MonitorRunner, *, interval: float = 10.0, holder: str | None = None) -> None:
        self.runner = runner
        super().__init__(LEASE, runner.store.monitors, runner.tick, interval=interval, holder=holder, on_stop=runner.close)

    def run_once(self) -> list[WindowResult] | None:  # type: ignore[override]
        """One tick if this process holds (or takes) the lease; None when another process has it."""
        result: list[WindowResult] | None = super().run_once()
        return result
