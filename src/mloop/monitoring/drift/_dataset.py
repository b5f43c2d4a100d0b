"""Dataset-level data drift: one test per feature chosen by its type, a multiple-testing correction, and a floor
on a scale-free effect size so that a huge sample does not alarm on a trivial shift."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mloop.data._columns import Coded, Column, Columns, as_columns, is_numeric, rows
from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._binned import PSI, ChiSquareTest, JensenShannon, _Binned
from mloop.monitoring.drift._correction import CORRECTIONS, adjust
from mloop.monitoring.drift._univariate import KSTest, TestResult
from mloop.monitoring.drift._wasserstein import Wasserstein

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
Test = KSTest | ChiSquareTest | PSI | JensenShannon | Wasserstein
TESTS: dict[str, type[Test]] = {
    "ks": KSTest, "chi_square": ChiSquareTest, "psi": PSI, "jensen_shannon": JensenShannon, "wasserstein": Wasserstein,
}
NUMERIC_TESTS = frozenset({"ks", "wasserstein", "psi", "jensen_shannon"})
DISCRETE_MAX = 10  # numbers with at most this many distinct values are compared as categories

#: The smallest effect that counts as drift, per measure. The two defaults that matter (numbers and categories)
#: were chosen from the power / A-A table of ``benchmarks/drift_power.py`` (see docs/drift.md): the largest floor
#: on a grid that still detects the shifts the targets name (mean ≥ 0.15 σ, scale ≥ 25 %, TV ≥ 0.1) in ≥ 97 % of
#: windows of 10k and 100k rows, so that trivial shifts in huge samples stay quiet. PSI and Jensen–Shannon keep the
#: customary 0.1.
DEFAULT_FLOORS: dict[str, float] = {"wasserstein_sd": 0.1, "total_variation": 0.075, "psi": 0.1, "jensen_shannon": 0.1}
_BOUNDED = frozenset({"total_variation", "jensen_shannon"})  # distances within [0, 1]: a floor above 1 never fires


def check_floors(floors: Mapping[str, float] | None) -> dict[str, float]:
    """The default floors overridden by ``floors``; an unknown measure or a negative or non-finite floor is refused."""
    merged = dict(DEFAULT_FLOORS)
    for measure, value in (floors or {}).items():
        if measure not in DEFAULT_FLOORS:
            raise InvalidInput(f"Unknown effect measure {measure!r}. Valid: {', '.join(DEFAULT_FLOORS)}.", field=f"floors.{measure}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"The floor for {measure} must be a finite number ≥ 0, got {value!r}.", field=f"floors.{measure}")
        if measure in _BOUNDED and value > 1:
            raise InvalidInput(f"The floor for {measure} must be a finite number within [0, 1], got {value!r}: the distance never exceeds 1.",
                               field=f"floors.{measure}")
        merged[measure] = float(value)
    return merged


def auto_test(column: Column) -> str:
    """The test for one feature, by type: KS for continuous numbers; chi-square for strings, categories,
    booleans and numbers with at most ten distinct values (KS is conservative on heavy ties). Chi-square keeps at
    most ``min(50, n / 5)`` levels of the reference (the rarest are pooled), so that expected counts stay near
    five or more."""
    if not is_numeric(column):
        return "chi_square"
    assert isinstance(column, np.ndarray)
    sample = column[: 10 * DISCRETE_MAX * DISCRETE_MAX]  # a look at the head decides most columns at once
    if len(np.unique(sample)) > DISCRETE_MAX:
        return "ks"
    return "chi_square" if len(np.unique(column[~np.isnan(column)] if column.dtype.kind == "f" else column)) <= DISCRETE_MAX else "ks"


def _build(name: str, rows: int) -> Test:
    if name in ("ks", "wasserstein"):
        return TESTS[name]()  # type: ignore[call-arg]
    return TESTS[name](max_categories=max(2, min(50, rows // 5)))  # type: ignore[call-arg]


def _named(feature: str, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``; an ``InvalidInput`` about "reference" or "current" is told which feature it concerns."""
    try:
        return call(*args)
    except InvalidInput as exc:
        if exc.field in (None, "reference", "current"):
            raise InvalidInput(f"Feature {feature!r}: {exc.message}", field=feature) from exc
        raise


def _numbers(column: Column) -> np.ndarray:
    assert isinstance(column, np.ndarray)
    return column


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's test: its statistic and p-values, its effect size on ``measure`` and the floor it was held to."""

    name: str
    test: str
    statistic: float
    p_value: float
    p_value_adjusted: float
    effect_size: float
    measure: str
    floor: float
    drift: bool


@dataclass(frozen=True)
class DriftReport:
    """Per-feature results and the dataset verdict (``drift`` when at least ``drift_share`` of features drifted)."""

    features: list[FeatureDrift]
    drift: bool
    share_drifted: float
    correction: str
    alpha: float
    floors: dict[str, float]
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

    A feature drifts when its adjusted p-value is below ``alpha`` *and* its effect size reaches the floor for
    its measure (``floors``, over :data:`DEFAULT_FLOORS`): Wasserstein-1 in reference standard deviations for
    numbers, total variation for categories. ``prediction`` names a column of model outputs: it is tested on
    its own (prediction drift, reported as ``report.prediction``) and does not count towards the share of
    drifted features. Tables are pandas DataFrames or mappings of column names to arrays.

    >>> rng = np.random.default_rng(1)
    >>> ref = {"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)}
    >>> detector = DatasetDrift().fit(ref)
    >>> detector.score({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)}).drift
    False
    >>> cur = {"x": rng.normal(0.3, 1.3, size=1000), "c": rng.choice(["a", "b"], 1000)}
    >>> detector.score(cur).drifted()
    ['x']
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        correction: str = "bh",
        floors: Mapping[str, float] | None = None,
        drift_share: float = 0.3,
        tests: dict[str, str] | None = None,
        prediction: str | None = None,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInput(f"alpha must be within (0, 1), got {alpha}.", field="alpha")
        if correction not in CORRECTIONS:
            raise InvalidInput(f"Unknown correction {correction!r}. Valid: {', '.join(CORRECTIONS)}.", field="correction")
        if not 0.0 < drift_share <= 1.0:
            raise InvalidInput(f"drift_share must be within (0, 1], got {drift_share}.", field="drift_share")
        for feature, test in (tests or {}).items():
            if test not in TESTS:
                raise InvalidInput(f"Unknown test {test!r} for feature {feature!r}. Valid: {', '.join(TESTS)}.", field=f"tests.{feature}")
        self.alpha = alpha
        self.correction = correction
        self.floors = check_floors(floors)
        self.drift_share = drift_share
        self.tests = dict(tests or {})
        self.prediction = prediction

    def _fit_one(self, name: str, column: Column) -> Test:
        chosen = self.tests.get(name) or auto_test(column)
        if chosen in ("ks", "wasserstein") and not is_numeric(column):
            raise InvalidInput(f"Test {chosen!r} needs a numeric feature; {name!r} holds categories.", field=f"tests.{name}")
        test = _build(chosen, len(column))
        return test.fit(column) if isinstance(test, _Binned) else test.fit(_numbers(column))

    def fit(self, reference: pd.DataFrame | Mapping[str, Any]) -> DatasetDrift:
        columns = as_columns(reference)
        if not columns or rows(columns) == 0:
            raise InvalidInput("reference table is empty.", field="reference")
        unknown = [f for f in self.tests if f not in columns]
        if unknown:
            raise InvalidInput(f"tests name feature(s) {unknown} that the reference lacks.", field=f"tests.{unknown[0]}")
        if self.prediction is not None and self.prediction not in columns:
            raise InvalidInput(
                f"The reference has no prediction column {self.prediction!r}; add the model's outputs to it.", field="prediction"
            )
        self.tests_: dict[str, Test] = {name: _named(name, self._fit_one, name, col) for name, col in columns.items() if name != self.prediction}
        self.prediction_test_ = _named(self.prediction, self._fit_one, self.prediction, columns[self.prediction]) if self.prediction else None
        self.rows_reference_ = rows(columns)
        return self

    def histogram(self, name: str, current: Column | Any) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Bin labels and the reference's and ``current``'s counts of one fitted feature, on the bins its
        test used (quantile bins of the reference for numeric tests), for plots."""
        test = self.tests_.get(name) if hasattr(self, "tests_") else None
        if test is None and name == self.prediction:
            test = self.prediction_test_
        if test is None:
            raise InvalidInput(f"No fitted feature {name!r}.", field="name")
        column = as_columns({name: current})[name]
        binner = test if isinstance(test, _Binned) else PSI.from_sorted(test.reference_, missing=test.missing_)
        return binner.bin_labels(), binner.reference_counts_, binner.counts(column)

    def _decide(self, name: str, result: TestResult, adjusted: float) -> FeatureDrift:
        floor = self.floors[result.measure]
        return FeatureDrift(
            name=name,
            test=result.test,
            statistic=result.statistic,
            p_value=result.p_value,
            p_value_adjusted=float(adjusted),
            effect_size=result.effect_size,
            measure=result.measure,
            floor=floor,
            drift=bool(adjusted < self.alpha and result.effect_size >= floor),
        )

    @staticmethod
    def _score(test: Test, column: Column) -> TestResult:
        return test.score(column) if isinstance(test, _Binned) else test.score(_numbers(column))

    def score(self, current: pd.DataFrame | Mapping[str, Any]) -> DriftReport:
        if not hasattr(self, "tests_"):
            raise NotFittedError("DatasetDrift.score called before fit(reference).")
        columns: Columns = as_columns(current)
        needed = [*self.tests_, *([self.prediction] if self.prediction_test_ is not None and self.prediction else [])]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise InvalidInput(f"current table lacks column(s) {missing} seen in the reference.", field=str(missing[0]))
        for name, test in self.tests_.items():
            if not isinstance(test, _Binned) and isinstance(columns[name], Coded):
                raise InvalidInput(f"Feature {name!r} held numbers in the reference and holds categories now.", field=name)
        results = {name: _named(name, self._score, test, columns[name]) for name, test in self.tests_.items()}
        names = list(results)
        adjusted = adjust(np.array([results[n].p_value for n in names]), self.correction)
        features = [self._decide(n, results[n], adj) for n, adj in zip(names, adjusted, strict=True)]
        prediction = None
        if self.prediction_test_ is not None and self.prediction is not None:
            result = _named(self.prediction, self._score, self.prediction_test_, columns[self.prediction])
            prediction = self._decide(self.prediction, result, result.p_value)
        share = sum(f.drift for f in features) / len(features) if features else 0.0
        return DriftReport(
            features=features,
            drift=bool(features) and share >= self.drift_share,
            share_drifted=share,
            correction=self.correction,
            alpha=self.alpha,
            floors=dict(self.floors),
            rows_reference=self.rows_reference_,
            rows_current=rows({n: columns[n] for n in needed}),
            prediction=prediction,
        )
