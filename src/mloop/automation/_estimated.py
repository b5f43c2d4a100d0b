"""Performance estimated without labels (CBPE) as the controller uses it: a trigger on blocks of the champion's
predictions, and the test an impact-aware data-drift alarm must pass (``impact.by: estimated``).

The cursor ``loop-estimated:DEP`` holds, per champion, the calibration fitted on its first labelled block, the
reference estimate with its variance, and where the last judged block ended.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mloop.automation._cbpe import Calibration, estimate, estimated_drop
from mloop.automation._gate import auc_with_variance
from mloop.automation._loop_policy import EstimatedTrigger
from mloop.automation._loop_rules import Trigger
from mloop.automation._parts import LABEL, ControllerParts
from mloop.errors import InvalidInput
from mloop.store import AuditLog

ORDER = ["ts", "request_id", "row"]


class Estimated(ControllerParts):
    """The estimated-performance trigger and the impact test built on it."""

    def estimated(self) -> list[int]:
        """For each policy with ``triggers.estimated``: once the champion has a labelled reference block, judge each
        new block of its predictions (labelled or not) by its estimated AUC; a significant fall opens an attempt. The
        block judged last is a cursor, moved with the attempt it opens."""
        opened = []
        for deployment, (policy_id, policy) in self.policies().items():
            spec = policy.triggers.estimated
            if spec is None:
                continue
            champion = self.rollouts.served_version(deployment)
            seen = self._calibrated(deployment, champion, spec)
            if seen is None or not self._arrived(f"estimated:{deployment}", deployment, champion, "predictions"):
                continue
            frame = self._scores(deployment, champion, since=math.nextafter(float(seen["until"]), math.inf))
            self._wants(f"estimated:{deployment}", champion, spec.rows - len(frame) % spec.rows)
            calibration = Calibration(**seen["calibration"])
            reference = seen["reference"]
            while len(frame) >= spec.rows:
                current, frame = frame.iloc[: spec.rows], frame.iloc[spec.rows:]
                block = int(seen["block"]) + 1
                span = {"since": float(current["ts"].min()), "until": float(current["ts"].max())}
                value = estimate(calibration, current["score"], resamples=spec.resamples, seed=block)
                drop = estimated_drop((reference["auc"], reference["var"]), value, len(current), alpha=spec.alpha, min_drop=spec.min_drop)
                seen = {**seen, "block": block, "until": span["until"]}
                with self.store.transaction() as conn:
                    if drop.dropped:
                        trigger = Trigger(deployment, "estimated", f"estimated:v{champion}:block{block}", self.clock(),
                                          {"champion": champion, "block": block, "estimated": True, **drop.to_dict(), **span})
                        attempt = self._open(conn, trigger, (policy_id, policy))
                        if attempt is not None:
                            opened.append(attempt)
                    self.store.loop.move_cursor(conn, f"loop-estimated:{deployment}", seen)
        return opened

    def _calibrated(self, deployment: str, champion: int, spec: EstimatedTrigger) -> dict[str, Any] | None:
        """The champion's calibration and reference, fitted on its first ``rows`` labelled predictions once they exist
        (None until then; looked for again only when labels arrived)."""
        name = f"loop-estimated:{deployment}"
        seen = self.store.loop.cursor(name)
        if seen is not None and seen.get("champion") == champion:
            return None if "unable" in seen else seen
        if not self._arrived(f"estimated-reference:{deployment}", deployment, champion, "feedback"):
            return None
        frame = self._scores(deployment, champion, labelled=True)
        if len(frame) < spec.rows:
            self._wants(f"estimated-reference:{deployment}", champion, spec.rows - len(frame))
            return None
        block = frame.iloc[: spec.rows]
        until = float(block["ts"].max())
        try:
            calibration = Calibration.fit(block[LABEL], block["score"])
            auc, var = estimate(calibration, block["score"], resamples=spec.resamples, seed=0)
            realized, _ = auc_with_variance(block[LABEL], block["score"])
            if not (math.isfinite(auc) and math.isfinite(var)):
                raise InvalidInput(f"the reference block's estimated AUC is {auc} (its scores cannot be ranked)", field="scores")
        except InvalidInput as exc:  # one class only, say: said once, and this champion is not estimated
            with self.store.transaction() as conn:
                AuditLog.record(conn, "loop.trigger_skipped", deployment, {"trigger": "estimated", "champion": champion,
                                "reason": f"version {champion} cannot be estimated without labels: {exc.message}"}, actor="controller")
                self.store.loop.move_cursor(conn, name, {"champion": champion, "unable": exc.message, "until": until})
            return None
        seen = {"champion": champion, "block": 0, "until": until, "calibration": calibration.to_dict(),
                "reference": {"auc": auc, "var": var, "realized": realized, "since": float(block["ts"].min()), "until": until}}
        with self.store.transaction() as conn:
            self.store.loop.move_cursor(conn, name, seen)
        return seen

    def _scores(self, deployment: str, champion: int, *, since: float | None = None, until: float | None = None,
                labelled: bool = False) -> pd.DataFrame:
        """The champion's predictions (ts, score, label) in time order, from ``since``; only labelled ones if asked."""
        frame = self.reader.labelled(deployment, since=since, until=until, columns=("version", "score"))
        if frame.empty:
            return frame
        keep = (frame["version"] == champion) & frame["score"].notna()
        if labelled:
            keep &= frame[LABEL].notna()
        return frame[keep].sort_values(ORDER, kind="stable").reset_index(drop=True)

    def _estimated_fall(self, deployment: str, spec: EstimatedTrigger, window: dict[str, Any]) -> dict[str, Any] | None:
        """Whether the champion's estimated AUC on the predictions of an alarm's ``window`` ({start, end}) fell below
        its reference: the drop's statistic, or None when it cannot be told yet (no reference, too few rows)."""
        champion = self.rollouts.served_version(deployment)
        seen = self._calibrated(deployment, champion, spec)
        start, end = window.get("start"), window.get("end")
        if seen is None or start is None or end is None:
            return None
        frame = self._scores(deployment, champion, since=float(start), until=float(end))
        if len(frame) < 20:
            return None
        value = estimate(Calibration(**seen["calibration"]), frame["score"], resamples=spec.resamples, seed=1)
        if not all(math.isfinite(v) for v in value):  # every score in one calibrated step: it cannot be told
            return None
        reference = seen["reference"]
        return estimated_drop((reference["auc"], reference["var"]), value, len(frame), alpha=spec.alpha, min_drop=spec.min_drop).to_dict()
