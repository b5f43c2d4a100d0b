"""Feature freshness: the decision whether a deployment's feature views are too old to serve from, as pure code over
the ages the online store reports (seconds since each view's newest materialised event)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FreshnessVerdict:
    """``stale``: the views whose newest row is older than ``max_age_s`` seconds, or that hold no row at all (``None``
    age: never materialised, or nothing to move yet); ``ages`` is the evidence, recorded with the alarm."""

    max_age_s: float
    ages: dict[str, float | None] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        return bool(self.stale)

    def to_dict(self) -> dict[str, Any]:
        return {"max_age_s": self.max_age_s, "ages_s": self.ages, "stale": self.stale}


def judge_freshness(ages: Mapping[str, float | None], max_age_s: float) -> FreshnessVerdict:
    """Which views are stale.

    >>> judge_freshness({"a": 10.0, "b": 7300.0, "c": None}, 3600).stale
    ['b', 'c']
    >>> judge_freshness({"a": 3600.0}, 3600).alarm  # at the bound is still fresh
    False
    """
    stale = sorted(view for view, age in ages.items() if age is None or age > max_age_s)
    return FreshnessVerdict(float(max_age_s), dict(ages), stale)
