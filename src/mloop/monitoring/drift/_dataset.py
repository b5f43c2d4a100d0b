"""Dataset-level data drift: one test per feature chosen by dtype, a multiple-testing correction,
and an effect-size floor so that a huge sample does not alarm on a trivial shift."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._binned import PSI, ChiSquareTest, JensenShannon, _Binned
from mloop.monitoring.drift._correction import CORRECTIONS, adjust
from mloop.monitoring.drift._univariate import KSTest, TestResult
from mloop.monitoring.drift._wasserstein import Wasserstein

Test = KSTest | ChiSquareTest | PSI | JensenShannon | Wasserstein
TESTS: dict[str, type[Test]] = {
    "ks": KSTest, "chi_square": ChiSquareTest, "psi": PSI, "jensen_shannon": JensenShannon, "wasserstein": Wasserstein,
}
NUMERIC_TESTS = frozenset({"ks", "wasserstein", "psi", "jensen_shannon"})
DISCRETE_MAX = 10  # numbers with at most this many distinct values are compared as categories


def auto_test(reference: pd.Series) -> str:
    """The test for one feature, by dtype and size: KS for continuous numbers; chi-square for strings, categories,
    booleans and numbers with at most ten distinct values (KS is conservative on heavy ties). Chi-square keeps at
    most ``min(50, n / 5)`` levels of the reference (the rarest are pooled), so that expected counts stay near
    five or more."""
    if pd.api.types.is_bool_dtype(reference) or not pd.api.types.is_numeric_dtype(reference):
        return "chi_square"
    sample = reference.to_numpy()[: 10 * DISCRETE_MAX * DISCRETE_MAX]  # a look at the head decides most columns at once
    if len(np.unique(sample)) > DISCRETE_MAX:
        return "ks"
    return "chi_square" if reference.nunique(dropna=True) <= DISCRETE_MAX else "ks"


def _build(name: str, reference: pd.Series) -> Test:
    if name == "ks":
        return KSTest()
    if name == "wasserstein":
        return Wasserstein()
    cls = TESTS[name]
    test = cls(max_categories=max(2, min(50, len(reference) // 5)))  # type: ignore[call-arg]
    return test


def _score(test: Test, current: pd.Series) -> TestResult:
    return test.score(current.to_numpy() if isinstance(test, KSTest | Wasserstein) else current)  # type: ignore[arg-type]


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
    prediction: FeatureDrift | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drift]


class DatasetDrift:
    """One test per feature (chosen by :func:`auto_test` unless ``tests`` names one), Benjamini–Hochberg
    by default.

    A feature drifts when its adjusted p-value is below ``alpha`` *and* its effect size is at least
    ``effect_floor`` (KS D, Cramér's V, or the distance itself for PSI, Jensen–Shannon and Wasserstein).
    ``prediction`` names a column of model outputs: it is tested on its own (prediction drift, reported as
    ``report.prediction``) and does not count towards the share of drifted features.

    >>> rng = np.random.default_rng(1)
    >>> ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)})
    >>> detector = DatasetDrift().fit(ref)
    >>> detector.score(ref.sample(1000, random_state=2)).drift
    False
    >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=1000), "c": rng.choice(["a", "b"], 1000)})
    >>> detector.score(cur).drifted()
    ['x']
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        correction: str = "bh",
        effect_floor: float = 0.1,
        drift_share: float = 0.3,
        tests: dict[str, str] | None = None,
        prediction: str | None = None,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInput(f"alpha must be within (0, 1), got {alpha}.", field="alpha")
        if correction not in CORRECTIONS:
            raise InvalidInput(f"Unknown correction {correction!r}. Valid: {', '.join(CORRECTIONS)}.", field="correction")
        if not 0.0 <= effect_floor < 1.0:
            raise InvalidInput(f"effect_floor must be within [0, 1), got {effect_floor}.", field="effect_floor")
        if not 0.0 < drift_share <= 1.0:
            raise InvalidInput(f"drift_share must be within (0, 1], got {drift_share}.", field="drift_share")
        for feature, test in (tests or {}).items():
            if test not in TESTS:
                raise InvalidInput(f"Unknown test {test!r} for feature {feature!r}. Valid: {', '.join(TESTS)}.", field=f"tests.{feature}")
        self.alpha = alpha
        self.correction = correction
        self.effect_floor = effect_floor
        self.drift_share = drift_share
        self.tests = dict(tests or {})
        self.prediction = prediction

    def _fit_one(self, name: str, series: pd.Series) -> Test:
        chosen = self.tests.get(name) or auto_test(series)
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if chosen in ("ks", "wasserstein") and not numeric:
            raise InvalidInput(f"Test {chosen!r} needs a numeric feature; {name!r} is {series.dtype}.", field=f"tests.{name}")
        test = _build(chosen, series)
        return test.fit(series) if isinstance(test, _Binned) else test.fit(series.to_numpy())

    def fit(self, reference: pd.DataFrame) -> DatasetDrift:
        if reference.empty:
            raise InvalidInput("reference frame is empty.", field="reference")
        unknown = [f for f in self.tests if f not in reference.columns]
        if unknown:
            raise InvalidInput(f"tests name feature(s) {unknown} that the reference lacks.", field=f"tests.{unknown[0]}")
        if self.prediction is not None and self.prediction not in reference.columns:
            raise InvalidInput(
                f"The reference has no prediction column {self.prediction!r}; add the model's outputs to it.", field="prediction"
            )
        self.tests_: dict[str, Test] = {
            str(col): self._fit_one(str(col), reference[col]) for col in reference.columns if col != self.prediction
        }
        self.prediction_test_ = self._fit_one(self.prediction, reference[self.prediction]) if self.prediction else None
        self.rows_reference_ = len(reference)
        return self

    def histogram(self, name: str, current: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Bin labels and the reference's and ``current``'s counts of one fitted feature, on the bins its
        test used (quantile bins of the reference for numeric tests), for plots."""
        test = self.tests_.get(name) if hasattr(self, "tests_") else None
        if test is None and name == self.prediction:
            test = self.prediction_test_
        if test is None:
            raise InvalidInput(f"No fitted feature {name!r}.", field="name")
        binner = test if isinstance(test, _Binned) else PSI.from_sorted(test.reference_, missing=test.missing_)
        return binner.bin_labels(), binner.reference_counts_, binner.counts(current if isinstance(test, _Binned) else current.to_numpy())

    def _decide(self, name: str, result: TestResult, adjusted: float) -> FeatureDrift:
        return FeatureDrift(
            name=name,
            test=result.test,
            statistic=result.statistic,
            p_value=result.p_value,
            p_value_adjusted=float(adjusted),
            effect_size=result.effect_size,
            drift=bool(adjusted < self.alpha and result.effect_size >= self.effect_floor),
        )

    def score(self, current: pd.DataFrame) -> DriftReport:
        if not hasattr(self, "tests_"):
            raise NotFittedError("DatasetDrift.score called before fit(reference).")
        needed = [*self.tests_, *([self.prediction] if self.prediction_test_ is not None else [])]
        missing = [c for c in needed if c not in current.columns]
        if missing:
            raise InvalidInput(f"current frame lacks column(s) {missing} seen in the reference.", field=str(missing[0]))
        results = {name: _score(test, current[name]) for name, test in self.tests_.items()}
        names = list(results)
        adjusted = adjust(np.array([results[n].p_value for n in names]), self.correction)
        features = [self._decide(n, results[n], adj) for n, adj in zip(names, adjusted, strict=True)]
        prediction = None
        if self.prediction_test_ is not None and self.prediction is not None:
            result = _score(self.prediction_test_, current[self.prediction])
            prediction = self._decide(self.prediction, result, result.p_value)
        share = sum(f.drift for f in features) / len(features) if features else 0.0
        return DriftReport(
            features=features,
            drift=bool(features) and share >= self.drift_share,
            share_drifted=share,
            correction=self.correction,
            alpha=self.alpha,
            effect_floor=self.effect_floor,
            rows_reference=self.rows_reference_,
            rows_current=len(current),
            prediction=prediction,
        )
