"""The adaptive response: a champion that learns online is updated with the labels that arrived since its last
update, each update an attempt of its own (kind ``online``) — learn on the older rows, gate on the newest, learn
those too, go live — and each a registered version whose run names the version it was updated from.

The labels are taken by their arrival time (a cursor on ``label_ts``), not by their prediction's: a label that
arrives late is still learnt once, in the update after it arrived. Labels younger than the controller's ``grace``
(the log's flush lag, in a server) wait for the next look, so that one stamped earlier but written to the log's files
later is not passed over.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from mloop.automation._loop_policy import LoopPolicy
from mloop.automation._loop_rules import ONLINE, Trigger
from mloop.automation._parts import LABEL, ControllerParts, StepFailed
from mloop.automation._training import RecipeCrashed
from mloop.store import AttemptRow, AuditLog

log = logging.getLogger("mloop.automation")


class Adaptive(ControllerParts):
    """Online updates: the trigger (enough new labels) and the step that learns them."""

    def learn(self) -> list[int]:
        """For each policy with ``online``: once ``rows`` labels arrived since the last update (counted cheaply from
        the log's new segments, then read), open an update attempt. The first look starts the clock; nothing opens
        while another attempt is in flight (the labels wait for the next update); a champion that cannot learn online
        is audited once and its labels passed over."""
        opened = []
        now = self.clock()
        for deployment, (policy_id, policy) in self.policies().items():
            spec = policy.online
            if spec is None:
                continue
            name = f"loop-online:{deployment}"
            seen = self.store.loop.cursor(name)
            if seen is None:
                with self.store.transaction() as conn:
                    self.store.loop.move_cursor(conn, name, {"labels_until": now})
                continue
            looked, counted = self._online_seen.get(deployment, (float(seen["labels_until"]), 0))
            counted += self.reader.written_since(deployment, "feedback", looked)
            self._online_seen[deployment] = (now, counted)
            if counted < spec.rows or any(a.open for a in self.store.loop.attempts(deployment, open_only=True, last=10)):
                continue
            after = float(seen["labels_until"])
            frame = self.reader.labelled(deployment, labels_after=after, columns=("version",))
            labelled = frame[frame[LABEL].notna()] if not frame.empty else frame
            # Only labels old enough to be in the log's files: one stamped earlier but written later is not passed over.
            frame = labelled[labelled["label_ts"] <= now - self.grace] if not labelled.empty else labelled
            if len(frame) < spec.rows:
                self._online_seen[deployment] = (now, len(labelled))  # read again once more arrived, or the young ones aged
                continue
            until = float(frame["label_ts"].max())
            champion = self.rollouts.served_version(deployment)
            unable = self._cannot_learn(deployment, champion)
            with self.store.transaction() as conn:
                if unable is not None:
                    if seen.get("unable") != champion:
                        AuditLog.record(conn, "loop.trigger_skipped", deployment, {"trigger": ONLINE, "champion": champion, "reason": unable},
                                        actor="controller")
                        log.warning("loop %s: %s", deployment, unable)
                    self.store.loop.move_cursor(conn, name, {"labels_until": until, "unable": champion})
                else:
                    trigger = Trigger(deployment, ONLINE, f"online:v{champion}:{until!r}", now,
                                      {"champion": champion, "labels_after": after, "labels_until": until, "rows": len(frame)})
                    attempt = self._open(conn, trigger, (policy_id, policy))
                    if attempt is not None:
                        opened.append(attempt)
                    self.store.loop.move_cursor(conn, name, {"labels_until": until})
            self._online_seen[deployment] = (now, 0)
        return opened

    def _cannot_learn(self, deployment: str, champion: int) -> str | None:
        from mloop.training import can_learn_online

        model = self.registry.load(self.store.deployments.get(deployment).model_name, champion).model
        if can_learn_online(model):
            return None
        return (f"version {champion} ({type(model).__name__}) cannot learn online: it has no partial_fit; train the champion with "
                "mloop.training:online or mloop.training:river for the policy's online updates")

    def _do_learn(self, attempt: AttemptRow, policy: LoopPolicy) -> tuple[str, dict[str, Any], str | None, dict[str, Any]]:
        """The train step of an online update: a copy of the champion learns the older labelled rows that arrived in
        the trigger's span (in prediction order); the newest ``holdout`` share is kept for the gate."""
        assert policy.online is not None
        deployment = self.store.deployments.get(attempt.deployment)
        champion = int(attempt.trigger_detail["champion"])
        if self.rollouts.served_version(deployment.name) != champion:
            return "done", {"reason": f"the deployment no longer serves version {champion}, the one these labels were to update"}, \
                "abandoned", {}
        loaded = self.registry.load(deployment.model_name, champion)
        features = loaded.feature_names
        d = attempt.trigger_detail
        frame = self.reader.labelled(deployment.name, labels_after=float(d["labels_after"]), labels_until=float(d["labels_until"]))
        frame = frame[frame[LABEL].notna()] if not frame.empty else frame
        missing = [f for f in features if f not in frame.columns]
        if frame.empty or missing:
            raise StepFailed(f"the log holds {len(frame)} labelled rows for this update" + (f" and lacks input column(s) {missing}" if missing else ""))
        frame = frame.sort_values(["ts", "request_id", "row"], kind="stable")[[*features, LABEL]].reset_index(drop=True)
        n_holdout = max(1, round(len(frame) * policy.online.holdout))
        train, holdout = frame.iloc[:-n_holdout], frame.iloc[-n_holdout:].reset_index(drop=True)
        train_path, holdout_path = self._save_window(attempt, train, holdout)
        paths = {"train": train_path, "holdout": holdout_path}
        version, run_id = self._log_update(attempt, loaded.model, [paths["train"]], deployment.model_name, champion, train[features].head(5), "")
        detail = {"run_id": run_id, "version": version, "champion": champion, "updated_from": champion, "train_rows": len(train),
                  "holdout_rows": len(holdout), "holdout": str(paths["holdout"])}
        return "gate", detail, None, {"champion": champion, "challenger": version, "run_id": run_id, "holdout": str(paths["holdout"]),
                                      "train": str(paths["train"])}

    def _learn_more(self, attempt: AttemptRow, model_name: str) -> dict[str, Any]:
        """After the gate: the update that passed learns the held-out rows too (they are the newest labels)."""
        gated = int(attempt.state["challenger"])
        model = self.registry.load(model_name, gated)
        example = pd.read_parquet(attempt.state["holdout"]).drop(columns=[LABEL]).head(5)
        version, run_id = self._log_update(attempt, model.model, [attempt.state["holdout"]], model_name, gated, example, "-holdout")
        return {"version": version, "run_id": run_id, "rows": len(pd.read_parquet(attempt.state["holdout"])), "updated_from": gated}

    def _log_update(self, attempt: AttemptRow, model: Any, paths: list[Any], model_name: str, parent: int, example: pd.DataFrame,
                    suffix: str) -> tuple[int, str]:
        """Update ``model`` (version ``parent``) with the rows of ``paths`` in the training worker, log it as a run
        that names its parent and register it; returns (version, run id)."""
        rows = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
        tags = {"mloop.loop.attempt": str(attempt.id), "mloop.loop.trigger": ONLINE, "mloop.loop.deployment": attempt.deployment,
                "mloop.loop.updated_from": str(parent)}
        with self.tracker.start_run(f"loop-{attempt.deployment}", run_name=f"attempt-{attempt.id}-online{suffix}", tags=tags) as run:
            run.log_dataset(rows, context="training", name=f"{attempt.deployment}-attempt-{attempt.id}{suffix}", targets=LABEL)
            run.log_params({"updated_from": parent, "rows": len(rows), "model": type(model).__name__})
            try:
                learnt = self.trainer.update(model, paths, LABEL)
            except RecipeCrashed as exc:
                raise StepFailed(exc.message) from exc
            except Exception as exc:
                raise StepFailed(f"the online update raised {type(exc).__name__}: {exc}") from exc
            uri = run.log_sklearn_model(learnt, example)
            run_id = run.run_id
        return self.registry.register(uri, model_name).version, run_id
