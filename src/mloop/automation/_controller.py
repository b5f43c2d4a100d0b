"""The loop controller: background work (one process, under a lease) that turns triggers into attempts and carries
each attempt through its steps — train a challenger on the log's labelled rows with the policy's recipe, judge it
against the champion on held-out rows (the gate), roll it out through a traffic policy, and follow the rollout to
its end. Every step is a row with its start, end, outcome and evidence, and each moves the attempt forward in one
transaction, so a crash at any point leaves a step to redo (or an attempt to abandon), never half of one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mloop.automation._adaptive import Adaptive
from mloop.automation._estimated import Estimated
from mloop.automation._gate import judge
from mloop.automation._impact import importance_shares
from mloop.automation._loop_policy import LoopPolicy, parse_loop_policy
from mloop.automation._loop_rules import ONLINE, ROLLOUT_RESULTS, Trigger, trigger_for
from mloop.automation._parts import LABEL, StepFailed
from mloop.automation._training import RecipeCrashed, Trainer
from mloop.automation._watches import Watches
from mloop.errors import MloopError
from mloop.events import LOOP_FALLBACK, EventBus
from mloop.monitoring import LogReader
from mloop.registry import Registry
from mloop.serving import Rollouts
from mloop.store import AttemptRow, AuditLog, MetadataStore, PolicyRow
from mloop.tracking import Tracker

log = logging.getLogger("mloop.automation")

LEASE = "loop-controller"
CURSOR = "loop-controller.events"
HEARTBEAT = "loop-controller.tick"  # when the controller's last pass began and ended: is it alive, has it seen what was sent
MAX_RETRIES = 2  # a step interrupted (the process died) this many times abandons its attempt


class LoopController(Watches, Estimated, Adaptive):
    """Drives the retraining policies of one workspace: ``tick()`` consumes new alarms and moves every open attempt
    as far as it can go now."""

    def __init__(self, store: MetadataStore, bus: EventBus, registry: Registry, tracker: Tracker, logs_dir: Path, loop_dir: Path, *,
                 clock: Callable[[], float] = time.time, grace: float = 0.0) -> None:
        self.store, self.bus, self.registry, self.tracker = store, bus, registry, tracker
        self.rollouts = Rollouts(registry, store, bus)
        self.reader = LogReader(logs_dir)
        self.loop_dir = loop_dir
        self.clock = clock
        self.grace = grace  # a server passes its log's flush lag; in-process callers have flushed what they wrote
        self.trainer = Trainer()  # recipes run in a worker process of their own
        self._arrivals = {}
        self._online_seen = {}

    # -- triggers ----------------------------------------------------------------------------

    def consume(self) -> list[int]:
        """Read the bus from the cursor; each alarm a policy listens to opens an attempt unless a guard holds it back
        (then the skip is audited). The trigger and the cursor past it commit together: none is lost or acted on
        twice."""
        after = self.store.loop.cursor(CURSOR)
        if after is None:
            return []  # no policy was ever applied: nothing listens yet
        opened = []
        events = self.bus.poll(int(after), limit=500)
        policies = self.policies()
        for event in events:
            trigger = trigger_for(event, {d: p for d, (_, p) in policies.items()})
            unfelt = self._unfelt(trigger, policies[trigger.deployment][1]) if trigger is not None else None
            with self.store.transaction() as conn:
                if trigger is not None and unfelt is not None:
                    AuditLog.record(conn, "loop.trigger_skipped", trigger.deployment,
                                    {"trigger": trigger.kind, "key": trigger.key, "detail": trigger.detail, **unfelt}, actor="controller")
                elif trigger is not None:
                    attempt = self._open(conn, trigger, policies[trigger.deployment])
                    if attempt is not None:
                        opened.append(attempt)
                self.store.loop.move_cursor(conn, CURSOR, event.id)
        return opened

    def _unfelt(self, trigger: Trigger, policy: LoopPolicy) -> dict[str, Any] | None:
        """With ``triggers.impact``, why a data-drift alarm touched nothing the champion relies on (None when it did,
        or when it cannot be told: then the alarm counts)."""
        spec = policy.triggers.impact
        if spec is None or trigger.detail.get("alarm") != "data_drift":
            return None
        if spec.by == "estimated" and policy.triggers.estimated is not None:
            try:
                fall = self._estimated_fall(trigger.deployment, policy.triggers.estimated, dict(trigger.detail.get("window") or {}))
            except Exception:  # as below: an alarm that cannot be weighed is not ignored
                log.exception("loop %s: the champion's performance could not be estimated", trigger.deployment)
                return None
            if fall is None or fall["dropped"]:
                return None
            return {"reason": f"the champion's estimated AUC on the drifted window did not fall significantly ({fall['current']:.4f} vs "
                              f"{fall['reference']:.4f} before, z {fall['z']:.2f})", "estimated": fall}
        try:
            shares = self._importance(trigger.deployment, spec.rows)
        except Exception:  # no labels yet, one class only: an alarm that cannot be weighed is not ignored
            log.exception("loop %s: the champion's feature importance could not be computed", trigger.deployment)
            return None
        drifted = {str(f): shares.get(str(f), 0.0) for f in trigger.detail.get("drifted", [])}
        if not drifted or max(drifted.values()) >= spec.min_share:
            return None
        said = ", ".join(f"{f} {share:.1%}" for f, share in drifted.items())
        return {"reason": f"the drift touched only features the champion hardly relies on ({said} of its importance, each under "
                          f"{spec.min_share:.0%})", "importance": drifted}

    def _importance(self, deployment: str, rows: int) -> dict[str, float]:
        """Each input's share of the champion's permutation importance (AUC lost when it is shuffled) on the newest
        labelled predictions; cached per champion version."""
        champion, name = self.rollouts.served_version(deployment), f"loop-importance:{deployment}"
        cached = self.store.loop.cursor(name)
        if cached is not None and cached.get("champion") == champion:
            return dict(cached["share"])
        model = self.registry.load(self.store.deployments.get(deployment).model_name, champion)
        frame = self.reader.labelled(deployment).dropna(subset=[LABEL]).tail(rows)
        share = importance_shares(model, frame[model.feature_names], frame[LABEL])
        with self.store.transaction() as conn:
            self.store.loop.move_cursor(conn, name, {"champion": champion, "share": share})
        return share

    # -- attempts ----------------------------------------------------------------------------

    def tick(self) -> list[AttemptRow]:
        """Consume alarms, performance drops and schedules, then move every open attempt; returns the attempts as they
        stand. Each pass ends by recording when it began and ended (``mloop loop status`` shows it)."""
        started = self.clock()
        for look in (self.consume, self.watch, self.estimated, self.scheduled, self.learn):
            try:
                look()
            except Exception:  # one trigger source's bug must not stop the others or the attempts in flight
                log.exception("loop controller: %s failed; it is tried again on the next pass", look.__name__)
        moved = []
        for attempt in self.store.loop.attempts(open_only=True, last=1000):
            try:
                moved.append(self.drive(attempt))
            except Exception:  # one attempt's bug must not stop the others; it stays at its step and is retried
                log.exception("loop attempt %d failed unexpectedly", attempt.id)
        self.end_fallbacks()
        with self.store.transaction() as conn:
            self.store.loop.move_cursor(conn, HEARTBEAT, {"started": started, "finished": self.clock()})
        return moved

    def drive(self, attempt: AttemptRow) -> AttemptRow:
        """Run the attempt's steps until it ends or waits (a rollout in progress)."""
        policy = parse_loop_policy(self.store.loop.policy_by_id(attempt.policy_id).document, check_recipe=False)
        while attempt.open:
            handler = {"fallback": self._fallback, "train": self._train, "gate": self._gate, "rollout": self._rollout,
                       "wait": self._wait}[attempt.step]
            if attempt.step != "wait" and not self._may_run(attempt):
                return self.store.loop.attempt(attempt.id)  # abandoned
            before = (attempt.step, attempt.result)
            handler(attempt, policy)
            attempt = self.store.loop.attempt(attempt.id)
            if (attempt.step, attempt.result) == before:
                break  # waiting on the rollout
        return attempt

    def _may_run(self, attempt: AttemptRow) -> bool:
        """A step that began and never finished (the process died in it) is marked interrupted and redone, up to
        :data:`MAX_RETRIES` times; then the attempt is abandoned."""
        steps = [s for s in self.store.loop.steps(attempt.id) if s.name == attempt.step]
        unfinished = [s for s in steps if s.finished_at is None]
        if not unfinished:
            return True
        interrupted = sum(1 for s in steps if s.outcome == "interrupted") + len(unfinished)
        with self.store.transaction() as conn:
            for s in unfinished:
                self.store.loop.finish_step(conn, s.id, "interrupted", {**s.detail, "reason": "the process running it stopped"})
            if interrupted >= MAX_RETRIES:
                self.store.loop.advance(conn, attempt.id, step="done", state={**attempt.state, "reason": f"step {attempt.step} interrupted "
                                        f"{interrupted} times"}, result="abandoned")
                return False
        return True

    def _step(self, attempt: AttemptRow, name: str, work: Callable[[], tuple[str, dict[str, Any], str | None, dict[str, Any]]]) -> None:
        """Record the step's start, do ``work`` → (next step, the step's evidence, the attempt's result or None, state
        additions), and record its end with the attempt's move in one transaction. A :class:`StepFailed` ends the
        attempt as failed, with its reason."""
        with self.store.transaction() as conn:
            step_id = self.store.loop.start_step(conn, attempt.id, name)
        try:
            following, detail, result, state = work()
            outcome = "ok" if result is None or result == "promoted" else result
        except StepFailed as exc:
            following, detail, result, state, outcome = "done", {"reason": exc.message}, "failed", {"reason": exc.message}, "failed"
        except Exception as exc:
            log.exception("loop attempt %d: step %s failed", attempt.id, name)
            message = f"{type(exc).__name__}: {exc}"
            following, detail, result, state, outcome = "done", {"reason": message}, "failed", {"reason": message}, "failed"
        with self.store.transaction() as conn:
            self.store.loop.finish_step(conn, step_id, outcome, detail)
            self.store.loop.advance(conn, attempt.id, step=following, state={**attempt.state, **state}, result=result)

    # -- the steps -----------------------------------------------------------------------------

    def _fallback(self, attempt: AttemptRow, policy: LoopPolicy) -> None:
        self._step(attempt, "fallback", lambda: self._do_fallback(attempt, policy))

    def _do_fallback(self, attempt: AttemptRow, policy: LoopPolicy) -> tuple[str, dict[str, Any], str | None, dict[str, Any]]:
        """Route the deployment to the policy's fallback version while the attempt retrains (a blue-green switch
        whose standby is the champion); the attempt goes on to train whether or not it could."""
        assert policy.fallback is not None
        deployment = self.store.deployments.get(attempt.deployment)
        me = f"controller:attempt-{attempt.id}"
        champion = self.rollouts.served_version(deployment.name)
        mine = [p for p in self.store.rollouts.history(deployment.name) if p.actor == me]
        if mine:  # switched before the process died
            row = mine[-1]
            return "train", {"version": int(row.document["active"]), "champion": champion, "policy_id": row.id}, None, \
                {"fallback": {"policy_id": row.id, "version": int(row.document["active"])}}
        try:
            target = policy.fallback.version or self.registry.resolve(deployment.model_name, str(policy.fallback.alias)).version
        except MloopError as exc:
            return "train", {"skipped": f"the fallback cannot be resolved: {exc.message}"}, None, {}
        if target == champion:
            return "train", {"skipped": f"the fallback is the champion (version {champion})"}, None, {}
        live = self.store.rollouts.live(deployment.name)
        if live is not None:
            return "train", {"skipped": f"another rollout ({live.kind} r{live.revision}) is in progress"}, None, {}
        row = self.rollouts.set(deployment.name, {"policy": "blue-green", "active": str(target), "standby": str(champion)}, actor=me,
                                reason=f"loop attempt {attempt.id}: serve version {target} while retraining ({attempt.trigger_kind} trigger)")
        with self.store.transaction() as conn:
            self.bus.publish(conn, LOOP_FALLBACK, {"deployment": deployment.name, "status": "firing", "attempt": attempt.id, "version": target,
                                                   "champion": champion, "trigger": attempt.trigger_kind})
        log.warning("loop %s: serving version %d instead of %d while attempt %d retrains", deployment.name, target, champion, attempt.id)
        return "train", {"version": target, "champion": champion, "policy_id": row.id, "revision": row.revision}, None, \
            {"fallback": {"policy_id": row.id, "version": target}}

    def end_fallbacks(self) -> None:
        """A fallback lasts while its attempt retrains: once the attempt has moved on to its rollout or ended (even
        if the process died right after), traffic returns to the champion. Its end is a step of the attempt."""
        for deployment in self.policies():
            live = self.store.rollouts.live(deployment)
            if live is None or live.kind != "blue-green" or not live.actor.startswith("controller:attempt-"):
                continue
            attempt = self.store.loop.attempt(int(live.actor.rsplit("-", 1)[1]))
            if attempt.state.get("fallback", {}).get("policy_id") != live.id or (attempt.open and attempt.step in ("fallback", "train", "gate")):
                continue
            self._end_fallback(attempt, live)

    def _end_fallback(self, attempt: AttemptRow, live: PolicyRow) -> None:
        me = f"controller:attempt-{attempt.id}"
        why = f"attempt {attempt.id} {'ended (' + attempt.result + ')' if attempt.result else 'rolls its challenger out'}: back to the champion"
        self.rollouts.record(live, {"action": "end", "reason": why}, actor=me, status="cancelled")
        with self.store.transaction() as conn:
            step_id = self.store.loop.start_step(conn, attempt.id, "fallback_end", {})
            self.store.loop.finish_step(conn, step_id, "ok", {"policy_id": live.id, "version": int(live.document["active"]), "reason": why})
            self.bus.publish(conn, LOOP_FALLBACK, {"deployment": attempt.deployment, "status": "resolved", "attempt": attempt.id,
                                                   "version": int(live.document["active"]), "result": attempt.result})

    def _train(self, attempt: AttemptRow, policy: LoopPolicy) -> None:
        self._step(attempt, "train", lambda: self._do_train(attempt, policy))

    def _do_train(self, attempt: AttemptRow, policy: LoopPolicy) -> tuple[str, dict[str, Any], str | None, dict[str, Any]]:
        if attempt.trigger_kind == ONLINE:
            return self._do_learn(attempt, policy)
        deployment = self.store.deployments.get(attempt.deployment)
        champion = self.rollouts.served_version(deployment.name)
        features = self.registry.load(deployment.model_name, champion).feature_names
        until = attempt.trigger_detail.get("until")
        train, holdout = self._window(deployment.name, policy, features, float(until) if until is not None else None)
        train_path, holdout_path = self._save_window(attempt, train, holdout)
        tags = {"mloop.loop.attempt": str(attempt.id), "mloop.loop.trigger": attempt.trigger_kind, "mloop.loop.deployment": deployment.name,
                "mloop.loop.recipe": policy.recipe.callable}
        with self.tracker.start_run(f"loop-{deployment.name}", run_name=f"attempt-{attempt.id}", tags=tags) as run:
            run.log_dataset(train, context="training", name=f"{deployment.name}-attempt-{attempt.id}-train", targets=LABEL)
            run.log_dataset(holdout, context="holdout", name=f"{deployment.name}-attempt-{attempt.id}-holdout", targets=LABEL)
            run.log_params({"recipe": policy.recipe.callable, **{f"recipe.{k}": v for k, v in policy.recipe.params.items()},
                            "champion": champion, "train_rows": len(train), "holdout_rows": len(holdout)})
            model = self._fit(policy, [train_path], "")
            uri = run.log_sklearn_model(model, train[features], labels=train[LABEL])
            run_id = run.run_id
        version = self.registry.register(uri, deployment.model_name).version
        detail = {"run_id": run_id, "version": version, "champion": champion, "train_rows": len(train), "holdout_rows": len(holdout),
                  "holdout": str(holdout_path)}
        return "gate", detail, None, {"champion": champion, "challenger": version, "run_id": run_id, "holdout": str(holdout_path),
                                      "train": str(train_path)}

    def _window(self, deployment: str, policy: LoopPolicy, features: list[str], until: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The labelled rows to learn from and the newest ones held out for the gate (time order, never mixed). A
        trigger whose evidence ends at ``until`` (a performance block) bounds the window there: the attempt learns from
        what it was triggered on, however late the controller got to it."""
        data = policy.data
        end = until if until is not None else self.clock()
        since = end - data.days * 86_400 if data.days is not None else None
        frame = self.reader.labelled(deployment, since=since, until=None if until is None else math.nextafter(until, math.inf))
        frame = frame[frame[LABEL].notna()] if not frame.empty else frame
        if len(frame) < data.min_rows:
            raise StepFailed(f"only {len(frame)} labelled rows in the log (the policy needs {data.min_rows})")
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise StepFailed(f"the log lacks the champion's input column(s) {missing}")
        frame = frame.sort_values(["ts", "request_id", "row"], kind="stable").tail(data.rows)[[*features, LABEL]].reset_index(drop=True)
        n_holdout = max(1, math.ceil(len(frame) * data.holdout))
        train, holdout = frame.iloc[:-n_holdout], frame.iloc[-n_holdout:].reset_index(drop=True)
        if data.base is not None and data.base_target is not None:
            from mloop.data import read_table

            base = read_table(Path(data.base)).rename(columns={data.base_target: LABEL})
            absent = [c for c in [*features, LABEL] if c not in base.columns]
            if absent:
                raise StepFailed(f"the base data {data.base} lacks column(s) {absent}")
            train = pd.concat([base[[*features, LABEL]], train], ignore_index=True)
        return train, holdout

    def _fit(self, policy: LoopPolicy, paths: list[Any], when: str) -> Any:
        """The policy's recipe fit in the training worker on the rows of ``paths``; what goes wrong fails the step."""
        try:
            return self.trainer.fit(policy.recipe.callable, policy.recipe.params, paths, LABEL)
        except RecipeCrashed as exc:
            raise StepFailed(exc.message + when) from exc
        except Exception as exc:
            raise StepFailed(f"the recipe {policy.recipe.callable} raised {type(exc).__name__}{when}: {exc}") from exc

    def _gate(self, attempt: AttemptRow, policy: LoopPolicy) -> None:
        self._step(attempt, "gate", lambda: self._do_gate(attempt, policy))

    def _do_gate(self, attempt: AttemptRow, policy: LoopPolicy) -> tuple[str, dict[str, Any], str | None, dict[str, Any]]:
        deployment = self.store.deployments.get(attempt.deployment)
        holdout = pd.read_parquet(attempt.state["holdout"])
        features = [c for c in holdout.columns if c != LABEL]
        champion = self.registry.load(deployment.model_name, int(attempt.state["champion"]))
        challenger = self.registry.load(deployment.model_name, int(attempt.state["challenger"]))
        online = attempt.trigger_kind == ONLINE and policy.online is not None
        spec = policy.online.gate if online and policy.online is not None else policy.gate
        result = judge(spec, holdout[LABEL].to_numpy(dtype=float), champion.score(holdout[features]), challenger.score(holdout[features]))
        detail = result.to_dict()
        if not result.passed:
            return "done", detail, "rejected_by_gate", {"gate": detail}
        if not policy.data.refit and not online:
            return "rollout", detail, None, {"gate": detail}
        refit = self._learn_more(attempt, deployment.model_name) if online else self._refit(attempt, policy, deployment.model_name, holdout, features)
        return "rollout", {**detail, "refit": refit}, None, {"gate": detail, "gated": attempt.state["challenger"], "challenger": refit["version"]}

    def _refit(self, attempt: AttemptRow, policy: LoopPolicy, model_name: str, holdout: pd.DataFrame, features: list[str]) -> dict[str, Any]:
        """The recipe that passed the gate, fit again on every row of the window (the held-out newest ones too)."""
        frame = pd.concat([pd.read_parquet(attempt.state["train"]), holdout], ignore_index=True)
        tags = {"mloop.loop.attempt": str(attempt.id), "mloop.loop.refit_of": str(attempt.state["challenger"]),
                "mloop.loop.recipe": policy.recipe.callable}
        with self.tracker.start_run(f"loop-{attempt.deployment}", run_name=f"attempt-{attempt.id}-refit", tags=tags) as run:
            run.log_dataset(frame, context="training", name=f"{attempt.deployment}-attempt-{attempt.id}-all", targets=LABEL)
            run.log_params({"recipe": policy.recipe.callable, **{f"recipe.{k}": v for k, v in policy.recipe.params.items()},
                            "refit_of": attempt.state["challenger"], "train_rows": len(frame)})
            model = self._fit(policy, [attempt.state["train"], attempt.state["holdout"]], " on the refit")
            uri = run.log_sklearn_model(model, frame[features], labels=frame[LABEL])
            run_id = run.run_id
        version = self.registry.register(uri, model_name).version
        return {"version": version, "run_id": run_id, "rows": len(frame)}

    def _rollout(self, attempt: AttemptRow, policy: LoopPolicy) -> None:
        self._step(attempt, "rollout", lambda: self._do_rollout(attempt, policy))

    def _do_rollout(self, attempt: AttemptRow, policy: LoopPolicy) -> tuple[str, dict[str, Any], str | None, dict[str, Any]]:
        champion, challenger = int(attempt.state["champion"]), int(attempt.state["challenger"])
        me = f"controller:attempt-{attempt.id}"
        fallback = attempt.state.get("fallback", {}).get("policy_id")
        live = self.store.rollouts.live(attempt.deployment)
        if live is not None and live.id == fallback:  # the fallback gives way to the challenger's rollout
            self._end_fallback(attempt, live)
        mine = [p for p in self.store.rollouts.history(attempt.deployment) if p.actor == me and p.id != fallback]
        if mine:  # set before the process died: carry on from where that rollout stands
            row = mine[-1]
            if not row.live:
                result = ROLLOUT_RESULTS.get(row.status, "abandoned")
                return "done", {"policy": row.kind, "revision": row.revision, "policy_id": row.id, "status": row.status}, result, {}
        else:
            live = self.store.rollouts.live(attempt.deployment)
            if live is not None:
                return "done", {"reason": f"another rollout ({live.kind} r{live.revision}) is in progress"}, "abandoned", {}
            served = self.rollouts.served_version(attempt.deployment)
            if served != champion:
                return "done", {"reason": f"the deployment now serves version {served}, not the champion {champion} it was judged against"}, \
                    "abandoned", {}
            plan = policy.online.rollout if attempt.trigger_kind == ONLINE and policy.online is not None else policy.rollout
            row = self.rollouts.set(attempt.deployment, plan.document(champion, challenger), actor=me,
                                    reason=f"loop attempt {attempt.id}: version {challenger} passed the gate")
        detail = {"policy": row.kind, "revision": row.revision, "policy_id": row.id}
        if row.kind == "blue-green":
            self.rollouts.promote(attempt.deployment, actor=me)  # the alias moves, then the promotion is recorded
            return "done", {**detail, "promoted": challenger}, "promoted", {"rollout": detail}
        return "wait", detail, None, {"rollout": detail}

    def _wait(self, attempt: AttemptRow, policy: LoopPolicy) -> None:
        """A canary's end decides the attempt's: promoted, rolled back, or abandoned (replaced by someone else)."""
        policy_id = int(attempt.state["rollout"]["policy_id"])
        row = next((p for p in self.store.rollouts.history(attempt.deployment) if p.id == policy_id), None)
        if row is None or row.live:
            return
        result = ROLLOUT_RESULTS.get(row.status, "abandoned")
        decisions = [d for d in self.store.rollouts.decisions(attempt.deployment, last=1000) if d.policy_id == policy_id]
        human = any(d.actor != "driver" and not d.actor.startswith("controller") for d in decisions)
        last = decisions[-1].decision if decisions else {}
        detail = {"status": row.status, "decided_by": decisions[-1].actor if decisions else None, "reason": last.get("reason", ""),
                  "evidence": last.get("evidence", [])}
        with self.store.transaction() as conn:
            step_id = self.store.loop.start_step(conn, attempt.id, "rollout_end", {})
            self.store.loop.finish_step(conn, step_id, result, detail)
            self.store.loop.advance(conn, attempt.id, step="done", state={**attempt.state, "rollout_end": detail}, result=result,
                                    human=human or None)

