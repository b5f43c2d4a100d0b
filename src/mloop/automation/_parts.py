"""What the loop controller's parts share: the workspace's pieces (set by :class:`LoopController`), its policies, and
how a trigger opens an attempt (or is skipped, audited, when a guard holds it back)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.automation._loop_policy import LoopPolicy, parse_loop_policy
from mloop.automation._loop_rules import ONLINE, Trigger, admit
from mloop.automation._training import Trainer
from mloop.errors import MloopError
from mloop.events import EventBus
from mloop.monitoring import LogReader
from mloop.registry import Registry
from mloop.serving import Rollouts
from mloop.store import AttemptRow, AuditLog, MetadataStore
from mloop.tracking import Tracker

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mloop.automation")

LABEL = "label"


class StepFailed(MloopError):
    """A step could not do its work (too few rows, a recipe that raised): the attempt ends as ``failed``."""


class ControllerParts:
    """The state and helpers every part of the controller uses."""

    store: MetadataStore
    bus: EventBus
    registry: Registry
    tracker: Tracker
    rollouts: Rollouts
    reader: LogReader
    loop_dir: Path
    clock: Callable[[], float]
    trainer: Trainer
    _arrivals: dict[str, tuple[int, float, int]]  # watch:deployment → (champion, last look, rows still missing for a block)
    _online_seen: dict[str, tuple[float, int]]  # deployment → (last look, labels counted since the last update)
    grace: float  # seconds a label may take to reach the log's files (flush, collector): newer ones wait for the next look

    def policies(self) -> dict[str, tuple[int, LoopPolicy]]:
        return {p.deployment: (p.id, parse_loop_policy(p.document, check_recipe=False)) for p in self.store.loop.policies()}

    def _save_window(self, attempt: AttemptRow, train: pd.DataFrame, holdout: pd.DataFrame) -> tuple[Path, Path]:
        """The attempt's training rows and held-out rows written atomically under its folder: (train, holdout) paths."""
        from mloop.files import replacing

        folder = self.loop_dir / attempt.deployment / f"attempt-{attempt.id:06d}"
        paths = folder / "train.parquet", folder / "holdout.parquet"
        for frame, path in zip((train, holdout), paths, strict=True):
            with replacing(path) as tmp:
                frame.to_parquet(tmp, index=False)
        return paths

    def _open(self, conn: Any, trigger: Trigger, policy: tuple[int, LoopPolicy], *, manual: bool = False, actor: str = "controller") -> int | None:
        row = self.store.loop.policy_by_id(policy[0])
        # The guards look at the retrains (however many online updates came between) and at whatever is in flight.
        earlier = {a.id: a for a in self.store.loop.attempts(trigger.deployment, last=1000, exclude_kind=ONLINE)}
        earlier.update({a.id: a for a in self.store.loop.attempts(trigger.deployment, open_only=True, last=10)})
        admission = admit(policy[1].guards, sorted(earlier.values(), key=lambda a: a.id), self.clock(), manual=manual,
                          online=trigger.kind == ONLINE)
        if not admission.admitted:
            AuditLog.record(conn, "loop.trigger_skipped", trigger.deployment,
                            {"trigger": trigger.kind, "key": trigger.key, "detail": trigger.detail, "reason": admission.reason}, actor=actor)
            log.info("loop %s: %s trigger skipped: %s", trigger.deployment, trigger.kind, admission.reason)
            return None
        fallback = policy[1].fallback
        first = "fallback" if fallback is not None and trigger.kind in fallback.on else "train"
        return self.store.loop.open_attempt(conn, row, kind=trigger.kind, key=trigger.key, detail={**trigger.detail, "admitted": admission.reason},
                                            at=trigger.at, step=first, actor=actor)

    def _wants(self, key: str, champion: int, rows: int) -> None:
        """Read the log again once this many more rows arrived (the rest of the block being filled)."""
        self._arrivals[key] = (champion, self._arrivals.get(key, (champion, self.clock(), 0))[1], rows)

    def _arrived(self, key: str, deployment: str, champion: int, kind: str) -> bool:
        """Whether enough rows of ``kind`` (labels, predictions) arrived since the last read to complete a block (or
        the champion changed): a count over the segments written since, so a partial block is not read again on every
        pass."""
        now = self.clock()
        seen = self._arrivals.get(key)
        if seen is None or seen[0] != champion:
            self._arrivals[key] = (champion, now, 0)
            return True
        _, looked, missing = seen
        missing -= self.reader.written_since(deployment, kind, looked)
        self._arrivals[key] = (champion, now, max(0, missing))
        return missing <= 0
