"""The demo's controller: the loop's brain for the walk — it watches the prediction log, decides when to retrain,
gates the challenger offline and drives the canary, recording every decision with the evidence it was taken on."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pandas as pd
from rich.console import Console

from mloop.automation import DriverStep, RolloutDriver
from mloop.demo._flights import SPEC
from mloop.demo._records import Clock, DemoAction, DemoConfig, WindowResult
from mloop.errors import Unavailable
from mloop.monitoring import LogReader
from mloop.monitoring.drift import ADWIN, DatasetDrift
from mloop.registry import LoadedModel
from mloop.rollout import Action
from mloop.serving import Rollouts
from mloop.training import auc, fit
from mloop.workspace import Workspace

MODEL = "flights"
DEPLOYMENT = "flights"
EXPERIMENT = "flights"
MAX_TRAIN_ROWS = 120_000


class Controller:
    """The loop's brain for the demo: watches the log, decides retraining and drives the canary."""

    def __init__(
        self, ws: Workspace, cfg: DemoConfig, console: Console, reference: pd.DataFrame, params: dict[str, Any], champion: int, clock: Clock
    ) -> None:
        self.ws = ws
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
        self.canary_version: int | None = None  # the challenger under a canary, while one runs
        self.rollouts = Rollouts(ws.registry, ws.store, ws.bus)
        self.driver = RolloutDriver(self.rollouts, ws.logs_dir, grace=0.0)  # the server's own driver, ticked at reproducible points
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

    def act(self, actions: list[str], month: int, kind: str, text: str, version: int | None = None, *, log: bool = True,
            facts: dict[str, float] | None = None, **evidence: float) -> None:
        """Record a decision: the sentence for the report, and the structured action with its evidence."""
        actions.append(text)
        self.actions.append(DemoAction(month, kind, version, text, {k: float(v) for k, v in {**(facts or {}), **evidence}.items()}))
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
        if self.canary_version is not None:
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
        self.canary_version = info.version
        self._start_canary(month, result.actions)

    # -- canary -------------------------------------------------------------------------------

    def _start_canary(self, month: int, actions: list[str]) -> None:
        """Set the canary as a policy document: the server routes by it, the driver judges it on the label loss."""
        assert self.canary_version is not None
        per_stage = max(100, int(1000 * self.cfg.sample))
        document = {
            "policy": "canary", "baseline": str(self.champion), "candidate": str(self.canary_version), "steps": [10, 50, 100],
            "min_samples": per_stage, "min_seconds": 0,
            # The demo's server never fails a request; the evidence it has is the labels: the Brier loss of each arm.
            "metrics": {"loss": {"tau": 0.01, "tolerance": 0.01, "min_samples": per_stage}},
        }
        row = self.rollouts.set(DEPLOYMENT, document, actor="demo", reason=f"v{self.canary_version} passed the offline gate")
        self._await_served(f"canary r{row.revision}", candidate_percent=10.0)
        self.note(f"canary: v{self.canary_version} gets 10% of traffic")

    def _await_served(self, policy: str | None, *, candidate_percent: float = 0.0, baseline: int | None = None) -> None:
        """Wait until the server routes by what was decided, so every later request meets it (the replay stays
        reproducible)."""
        if self.client is None:
            return
        deadline = time.monotonic() + 30
        while True:
            rollout = self.client.get(f"/v2/models/{DEPLOYMENT}/stats").json()["rollout"]
            if rollout["policy"] == policy and abs(rollout["candidate_percent"] - candidate_percent) < 1e-9 and (
                baseline is None or rollout["baseline_version"] == baseline
            ):
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"The server did not apply the rollout within 30 s ({rollout}); see server.log.")
            time.sleep(0.02)

    def check_canary(self, month: int, actions: list[str]) -> None:
        if self.canary_version is None:
            return
        with self.phase("canary"):
            now = time.time()  # everything sent so far is on disk (the replay waited for it): read up to now
            for step in self.driver.tick(now=now, horizon=now):
                if step.applied:
                    self._carried_out(month, actions, step)

    def _carried_out(self, month: int, actions: list[str], step: DriverStep) -> None:
        """Report what the driver decided and carried out, with the statistic it decided on."""
        version, decision = self.canary_version, step.decision
        loss = next(e for e in decision.evidence if e.metric == "loss")
        evidence = {"share": decision.share, "candidate_loss": loss.candidate, "baseline_loss": loss.baseline, "candidate_n": loss.n_candidate,
                    "baseline_n": loss.n_baseline, "log_ratio": loss.log_ratio, "threshold": loss.threshold, "upper": loss.upper,
                    "tolerance": loss.tolerance}
        brier = f"Brier {loss.candidate:.4f} vs {loss.baseline:.4f} on {loss.n_candidate:,} / {loss.n_baseline:,} labels"
        row = self.ws.store.rollouts.history(DEPLOYMENT)[-1]
        if decision.action is Action.ADVANCE:
            self.act(actions, month, "advance", f"canary stage {decision.share:g}% passed ({brier}; log Λ {loss.log_ratio:.2f} < "
                     f"{loss.threshold:.2f})", version, facts=evidence)
            share = row.document["steps"][decision.stage + 1]
            self._await_served(f"canary r{row.revision}", candidate_percent=float(share))
            self.note(f"canary: v{version} gets {share:g}% of traffic")
        elif decision.action is Action.PROMOTE:
            self.act(actions, month, "promote", f"v{version} promoted to champion ({brier}; worse by at most {loss.upper:+.4f} < "
                     f"{loss.tolerance:g})", version, facts=evidence)
            self._await_served(None, baseline=version)
            assert version is not None
            self.champion = version
            if self.challenger_reference is not None:
                # The new champion was trained on recent data: that is the reference from now on.
                self.drift = DatasetDrift().fit(self.challenger_reference)
            self.canary_version = None
        elif decision.action is Action.ROLLBACK:
            self.act(actions, month, "rollback", f"canary rolled back: v{version} was worse ({brier}; log Λ {loss.log_ratio:.2f} ≥ "
                     f"{loss.threshold:.2f})", version, facts=evidence)
            self._await_served(None, baseline=self.champion)
            self.canary_version = None
