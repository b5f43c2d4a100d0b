"""What the demo is told and what it reports: its knobs, the month-by-month windows, each decision with its
evidence, the result, where the time went, and the summary table's rows."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput


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
