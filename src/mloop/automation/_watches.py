"""The controller's own watches, beside the monitors' alarms: the champion's labelled AUC against its reference
(a performance trigger) and cron schedules."""

from __future__ import annotations

import math

from mloop.automation._gate import auc_drop, auc_with_variance
from mloop.automation._loop_rules import Trigger, due
from mloop.automation._parts import LABEL, ControllerParts


class Watches(ControllerParts):
    """Triggers the controller finds itself, each a cursor moved with the attempt it opens."""

    def watch(self) -> list[int]:
        """The performance triggers: for each policy that has one, compare every new complete block of the champion's
        labelled predictions with its reference block (the first); a significant drop opens an attempt. The block
        evaluated last is a cursor, moved with the attempt it opens."""
        opened = []
        for deployment, (policy_id, policy) in self.policies().items():
            spec = policy.triggers.performance
            if spec is None:
                continue
            champion = self.rollouts.served_version(deployment)
            if not self._arrived(f"performance:{deployment}", deployment, champion, "feedback"):
                continue
            name = f"loop-performance:{deployment}"
            seen = self.store.loop.cursor(name) or {}
            if seen.get("champion") != champion:  # a new champion: its first block will be its reference
                seen = {"champion": champion, "block": -1}
            until = seen.get("until")
            # Only the predictions after the last judged block (the log's older segments are not read again).
            frame = self.reader.labelled(deployment, since=None if until is None else math.nextafter(float(until), math.inf),
                                         columns=("version", "score"))
            if frame.empty:
                self._wants(f"performance:{deployment}", champion, spec.rows)
                continue
            frame = frame[(frame["version"] == champion) & frame[LABEL].notna()].sort_values(["ts", "request_id", "row"], kind="stable")
            self._wants(f"performance:{deployment}", champion, spec.rows - len(frame) % spec.rows)
            while len(frame) >= spec.rows:
                current, frame = frame.iloc[: spec.rows], frame.iloc[spec.rows:]
                block = int(seen["block"]) + 1
                span = {"since": float(current["ts"].min()), "until": float(current["ts"].max())}
                if block == 0:
                    ref_auc, ref_var = auc_with_variance(current[LABEL], current["score"])
                    seen = {"champion": champion, "block": 0, "until": span["until"], "reference": {"auc": ref_auc, "var": ref_var, **span}}
                    with self.store.transaction() as conn:
                        self.store.loop.move_cursor(conn, name, seen)
                    continue
                reference = seen["reference"]
                drop = auc_drop((reference["auc"], reference["var"]), (current[LABEL], current["score"]), alpha=spec.alpha, min_drop=spec.min_drop)
                seen = {**seen, "block": block, "until": span["until"]}
                with self.store.transaction() as conn:
                    if drop.dropped:
                        # The evidence ends at the block's last prediction, and so does the data the attempt learns from.
                        trigger = Trigger(deployment, "performance", f"performance:v{champion}:block{block}", self.clock(),
                                          {"champion": champion, "block": block, **drop.to_dict(), **span})
                        attempt = self._open(conn, trigger, (policy_id, policy))
                        if attempt is not None:
                            opened.append(attempt)
                    self.store.loop.move_cursor(conn, name, seen)
        return opened

    def scheduled(self) -> list[int]:
        """The cron triggers: a policy's ``schedule`` due since the last look opens an attempt (once for the latest due
        time, however many were missed while the controller was down); the first look only starts the clock."""
        opened = []
        now = self.clock()
        for deployment, (policy_id, policy) in self.policies().items():
            schedule = policy.triggers.schedule
            if schedule is None:
                continue
            name = f"loop-schedule:{deployment}"
            seen = self.store.loop.cursor(name)
            at = due(schedule, float(seen["at"]), now) if seen is not None and seen.get("schedule") == schedule else None
            if seen is not None and seen.get("schedule") == schedule and at is None:
                continue
            with self.store.transaction() as conn:
                if at is not None:
                    trigger = Trigger(deployment, "schedule", f"schedule:{at:.0f}", now, {"schedule": schedule, "due": at})
                    attempt = self._open(conn, trigger, (policy_id, policy))
                    if attempt is not None:
                        opened.append(attempt)
                self.store.loop.move_cursor(conn, name, {"schedule": schedule, "at": at if at is not None else now})
        return opened
