"""What the demo is told and what it reports: its knobs, the month-by-month windows, each decision with its
evidence, the result, where the time went, and the summary table's rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput


@dataclass
class DemoConfig:
    """Knobs of the demo; the defaults are the full run (a few minutes on two cores)."""

    sample: float = 1.0
    trials: int = 8
    seed: int = 0
    batch_size: int = 0  # rows per request; 0 picks 10 × sample, so a month is ~2,800 requests at any sample
    label_delay: int = 6  # labels of a request arrive this many requests later
    first_month: int = 3
    last_month: int = 12
    block_rows: int = 0  # the performance trigger's block of labelled predictions; 0 picks 25,000 × sample (about a month)

    def check(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise InvalidInput(f"sample must be within (0, 1], got {self.sample}.", field="sample")
        if self.trials < 1:
            raise InvalidInput(f"trials must be at least 1, got {self.trials}.", field="trials")
        if self.batch_size < 0:
            raise InvalidInput(f"batch_size must be at least 1 (or 0 for automatic), got {self.batch_size}.", field="batch_size")
        if self.block_rows != 0 and self.block_rows < 200:
            raise InvalidInput(f"block_rows must be at least 200 (or 0 for automatic), got {self.block_rows}.", field="block_rows")
        if not 3 <= self.first_month <= self.last_month <= 12:
            raise InvalidInput(
                f"months must satisfy 3 <= first_month <= last_month <= 12, got {self.first_month}..{self.last_month}.",
                field="months",
            )

    @property
    def rows_per_block(self) -> int:
        return self.block_rows or max(200, round(25_000 * self.sample))


@dataclass
class WindowResult:
    """One replayed month: what was served and how well, and how far its inputs were from January–February (observed
    for the report after the replay; the loop acts on the champion's AUC, not on this)."""

    month: int
    rows: int
    labelled: int
    versions: dict[int, int]
    drift: bool
    drift_share: float
    drifted: list[str]
    effects: dict[str, float]
    p_values: dict[str, float]
    actions: list[str] = field(default_factory=list)
    auc_served: float = float("nan")
    auc_static: float = float("nan")


@dataclass(frozen=True)
class DemoAction:
    """One thing the server's loop did, read back from its records, in the month being replayed when it did it.

    ``kind``: ``trigger`` (the champion's AUC fell: an attempt opened), ``skip`` (a trigger a guard held back),
    ``pass`` / ``reject`` (the gate's verdict on the challenger), ``failed`` (a step could not work), ``canary`` (the
    challenger's rollout began), ``advance`` (a canary stage passed), ``promote``, ``rollback``."""

    month: int
    kind: str
    version: int | None
    why: str
    evidence: dict[str, float] = field(default_factory=dict)
    attempt: int | None = None


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
    attempts: list[dict[str, Any]] = field(default_factory=list)  # ``mloop loop history --json``, oldest first
    to_champion: dict[int, dict[str, float]] = field(default_factory=dict)  # attempt → rows and seconds from its evidence to serving

    @property
    def steps_without_human(self) -> tuple[int, int]:
        """(steps no person acted in, all steps) over every attempt."""
        return sum(len(a["steps"]) for a in self.attempts if not a["human"]), sum(len(a["steps"]) for a in self.attempts)


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


_SHORT = {"trigger": "AUC fell", "reject": "rejected by the gate", "failed": "attempt failed"}


def short_action(action: DemoAction) -> str | None:
    """A few words for the summary table (the report has the full sentence); None for what is not an event."""
    if action.kind in ("pass", "canary", "promote", "rollback") and action.version is not None:
        return f"v{action.version} " + {"pass": "passed the gate", "canary": "canary", "promote": "promoted", "rollback": "rolled back"}[action.kind]
    return _SHORT.get(action.kind)


def summary_rows(result: DemoResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for w in result.windows:
        said = [short_action(a) for a in result.actions if a.month == w.month]
        rows.append(
            (
                f"{w.month:02d}",
                f"{w.rows:,}",
                ", ".join(f"v{v}" for v in sorted(w.versions)),
                f"{w.drift_share:.0%}" + (" ⚠" if w.drift else ""),
                f"{w.auc_static:.3f}",
                f"{w.auc_served:.3f}",
                ", ".join(dict.fromkeys(a for a in said if a)),
            )
        )
    return rows


def attempt_rows(result: DemoResult) -> list[tuple[str, ...]]:
    """One row per attempt: its trigger's evidence, the gate's statistic, how it ended, and how long it took."""
    rows: list[tuple[str, ...]] = []
    for a in result.attempts:
        t = a["trigger"]["detail"]
        evidence = (f"AUC {t['current']:.3f} vs {t['reference']:.3f}, z {t['z']:.2f}" if a["trigger"]["kind"] == "performance"
                    else a["trigger"]["kind"])
        gate = next((s for s in a["steps"] if s["name"] == "gate"), None)
        verdict = "—" if gate is None or gate["detail"].get("challenger") is None else (
            f"AUC {gate['detail']['challenger']:.3f} vs {gate['detail']['champion']:.3f}, lower {gate['detail']['lower']:+.4f}")
        took = result.to_champion.get(a["id"])
        rows.append((str(a["id"]), evidence, verdict, a["result"] or "in flight",
                     f"{took['rows']:,.0f} rows, {took['seconds']:.1f} s" if took else "", "yes" if a["human"] else "no"))
    return rows


ATTEMPT_COLUMNS = ("attempt", "trigger evidence", "gate: challenger vs champion", "result", "evidence → champion serving", "human")


def print_attempts(console: Any, result: DemoResult, title: str = "the loop's attempts (mloop loop history flights)") -> None:
    """The attempts table and the share of steps that needed no human, as ``mloop demo`` and the benchmark print them."""
    from rich.table import Table

    table = Table(title=title)
    for col in ATTEMPT_COLUMNS:
        table.add_column(col)
    for row in attempt_rows(result):
        table.add_row(*row)
    console.print(table)
    auto, steps = result.steps_without_human
    console.print(f"steps that needed no human: {auto} of {steps}" + (f" ({auto / steps:.0%})" if steps else ""))
