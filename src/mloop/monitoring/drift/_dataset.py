"""Dataset-level data drift: one test per feature chosen by dtype, a multiple-testing correction,
and an effect-size floor so that a huge sample does not alarm on a trivial shift."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._correction import CORRECTIONS, adjust
from mloop.monitoring.drift._binned import ChiSquareTest
from mloop.monitoring.drift._univariate import KSTest


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    test: str
    statistic: float
    p_value: float
    p_value_adjusted: float
    effect_size: float
    drift: bool


@dataclass(frozen=True)
class DriftReport:
    """Per-feature results and the dataset verdict (``drift`` when at least ``drift_share`` of features drifted)."""

    features: list[FeatureDrift]
    drift: bool
    share_drifted: float
    correction: str
    alpha: float
    effect_floor: float
    rows_reference: int
    rows_current: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drift]


class DatasetDrift:
    """KS for numeric columns, chi-square for the rest; Benjamini–Hochberg by default.

    A feature drifts when its adjusted p-value is below ``alpha`` *and* its effect size is at least
    ``effect_floor`` (KS D or Cramér's V).

    >>> rng = np.random.default_rng(1)
    >>> ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)})
    >>> detector = DatasetDrift().fit(ref)
    >>> detector.score(ref.sample(1000, random_state=2)).drift
    False
    >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=1000), "c": rng.choice(["a", "b"], 1000)})
    >>> detector.score(cur).drifted()
    ['x']
    """

    def __init__(self, *, alpha: float = 0.05, correction: str = "bh", effect_floor: float = 0.1, drift_share: float = 0.3) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInput(f"alpha must be within (0, 1), got {alpha}.", field="alpha")
        if correction not in CORRECTIONS:
            raise InvalidInput(f"Unknown correction {correction!r}. Valid: {', '.join(CORRECTIONS)}.", field="correction")
        if not 0.0 <= effect_floor < 1.0:
            raise InvalidInput(f"effect_floor must be within [0, 1), got {effect_floor}.", field="effect_floor")
        if not 0.0 < drift_share <= 1.0:
            raise InvalidInput(f"drift_share must be within (0, 1], got {drift_share}.", field="drift_share")
        self.alpha = alpha
        self.correction = correction
        self.effect_floor = effect_floor
        self.drift_share = drift_share

    def fit(self, reference: pd.DataFrame) -> DatasetDrift:
        if reference.empty:
            raise InvalidInput("reference frame is empty.", field="reference")
        self.tests_: dict[str, KSTest | ChiSquareTest] = {}
        for col in reference.columns:
            series = reference[col]
            is_numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
            test: KSTest | ChiSquareTest = KSTest() if is_numeric else ChiSquareTest()
            self.tests_[str(col)] = test.fit(series.to_numpy())
        self.rows_reference_ = len(reference)
        return self

    def score(self, current: pd.DataFrame) -> DriftReport:
        if not hasattr(self, "tests_"):
            raise NotFittedError("DatasetDrift.score called before fit(reference).")
        missing = [c for c in self.tests_ if c not in current.columns]
        if missing:
            raise InvalidInput(f"current frame lacks feature(s) {missing} seen in the reference.", field=missing[0])
        results = {name: test.score(current[name].to_numpy()) for name, test in self.tests_.items()}
        names = list(results)
        adjusted = adjust(np.array([results[n].p_value for n in names]), self.correction)
        features = [
            FeatureDrift(
                name=n,
                test=results[n].test,
                statistic=results[n].statistic,
                p_value=results[n].p_value,
                p_value_adjusted=float(adj),
                effect_size=results[n].effect_size,
                drift=bool(adj < self.alpha and results[n].effect_size >= self.effect_floor),
            )
            for n, adj in zip(names, adjusted, strict=True)
        ]
        share = sum(f.drift for f in features) / len(features)
        return DriftReport(
            features=features,
            drift=share >= self.drift_share,
            share_drifted=share,
            correction=self.correction,
            alpha=self.alpha,
            effect_floor=self.effect_floor,
            rows_reference=self.rows_reference_,
            rows_current=len(current),
        )
