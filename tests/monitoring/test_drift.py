from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift import ADWIN, ChiSquareTest, DatasetDrift, KSTest, benjamini_hochberg, bonferroni


@pytest.mark.parametrize("seed", range(5))
def test_ks_matches_scipys_exact_test(seed: int) -> None:
    """D is SciPy's to the bit; the p-value (Kolmogorov with Stephens' correction) is within 0.01 of SciPy's exact
    one, and within a factor 1.3 in the tail."""
    rng = np.random.default_rng(seed)
    ref, cur = rng.normal(size=700), rng.normal(0.1 * seed, size=400)
    expected = stats.ks_2samp(ref, cur)
    got = KSTest().fit(ref).score(cur)
    assert got.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert got.p_value == pytest.approx(expected.pvalue, abs=0.01)
    if expected.pvalue < 0.01:
        assert 1 / 1.3 < got.p_value / expected.pvalue < 1.3


@pytest.mark.parametrize(("n_ref", "n_cur", "shift", "ties"), [(30_000, 12_000, 0.0, False), (20_000, 50_000, 0.03, False), (15_000, 11_000, 0.0, True)])
def test_ks_on_large_samples_matches_scipys_test(n_ref: int, n_cur: int, shift: float, ties: bool) -> None:
    rng = np.random.default_rng(n_ref)
    ref, cur = rng.normal(size=n_ref), rng.normal(shift, size=n_cur)
    if ties:  # rounded values: many equal points on both sides
        ref, cur = np.round(ref, 1), np.round(cur, 1)
    expected = stats.ks_2samp(ref, cur)
    got = KSTest().fit(ref).score(cur)
    assert got.statistic == expected.statistic
    assert got.p_value == pytest.approx(expected.pvalue, abs=2e-3)


def test_chi_square_matches_scipy_contingency() -> None:
    rng = np.random.default_rng(0)
    ref = rng.choice(list("abcd"), 1000, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    cur = rng.choice(list("abcd"), 800, p=[0.3, 0.3, 0.2, 0.2]).astype(object)
    table = np.array([[np.sum(ref == c) for c in "abcd"], [np.sum(cur == c) for c in "abcd"]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    got = ChiSquareTest().fit(ref).score(cur)
    assert got.statistic == pytest.approx(chi2, rel=1e-12)
    assert got.p_value == pytest.approx(p, abs=1e-9)
    shares = table / table.sum(axis=1, keepdims=True)
    assert got.effect_size == pytest.approx(np.abs(shares[0] - shares[1]).sum() / 2, abs=1e-12)  # total variation
    assert got.measure == "total_variation"


def test_chi_square_pools_unseen_categories_and_missing_values() -> None:
    chi = ChiSquareTest().fit(np.array(["a", "b"] * 100, dtype=object))
    result = chi.score(np.array(["a", "b", "zzz", None] * 50, dtype=object))
    assert result.p_value < 1e-6 and result.effect_size == pytest.approx(0.5)  # half the rows are unseen or missing


@pytest.mark.parametrize("seed", range(3))
def test_the_numeric_effect_is_scipys_wasserstein_in_reference_standard_deviations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = rng.gamma(2.0, 3.0, size=3000), rng.gamma(2.5, 3.0, size=1700)
    got = KSTest().fit(ref).score(cur)
    assert got.measure == "wasserstein_sd"
    assert got.effect_size == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)


def test_the_shifts_that_the_old_floor_missed_are_flagged_and_an_unchanged_feature_is_not() -> None:
    """The issue's new-user check: on 100k rows, a 0.15 σ mean shift and a 30 % wider spread (both under 0.1 on
    KS's D) drift; their effect reads in reference standard deviations."""
    rng = np.random.default_rng(7)
    n = 100_000
    ref = {"mean": rng.normal(size=n), "spread": rng.normal(size=n), "same": rng.normal(size=n)}
    cur = {"mean": rng.normal(0.15, size=n), "spread": rng.normal(scale=1.3, size=n), "same": rng.normal(size=n)}
    report = DatasetDrift().fit(ref).score(cur)
    by_name = {f.name: f for f in report.features}
    assert report.drifted() == ["mean", "spread"]
    assert by_name["mean"].statistic < 0.1 and by_name["spread"].statistic < 0.1  # KS's D: under the old floor
    assert by_name["mean"].effect_size == pytest.approx(0.15, abs=0.02)
    assert by_name["spread"].effect_size == pytest.approx(0.3 * np.sqrt(2 / np.pi), abs=0.02)  # W1 of N(0,1), N(0,1.3²)
    assert by_name["same"].effect_size < 0.02 and by_name["mean"].floor == 0.1 and by_name["mean"].measure == "wasserstein_sd"

@pytest.mark.parametrize("n", [1, 5, 40])
def test_corrections_match_scipy(n: int) -> None:
    p = np.random.default_rng(n).random(n) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"), atol=1e-12)
    np.testing.assert_allclose(bonferroni(p), np.minimum(p * n, 1.0))


def test_aa_windows_alarm_at_the_corrected_rate_and_uncorrected_tests_would_not() -> None:
    """Ten unchanged features, fresh samples per window: with BH at α = 0.05 any-feature alarms stay near 5 %;
    the same tests uncorrected alarm in about 1 − 0.95¹⁰ ≈ 40 % of windows."""
    rng = np.random.default_rng(42)
    windows, corrected, uncorrected = 300, 0, 0
    for _ in range(windows):
        ref = {f"x{i}": rng.normal(size=2000) for i in range(10)}
        cur = {f"x{i}": rng.normal(size=500) for i in range(10)}
        corrected += DatasetDrift(drift_share=0.1, floors={"wasserstein_sd": 0.0}).fit(ref).score(cur).drift
        uncorrected += DatasetDrift(drift_share=0.1, correction="none", floors={"wasserstein_sd": 0.0}).fit(ref).score(cur).drift
    assert corrected / windows <= 0.08
    assert uncorrected / windows >= 0.3


def test_effect_floor_ignores_trivial_shift_in_huge_samples() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=200_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, size=200_000)})
    with_floor = DatasetDrift().fit(ref).score(cur)
    without = DatasetDrift(floors={"wasserstein_sd": 0.0}).fit(ref).score(cur)
    assert with_floor.features[0].p_value_adjusted < 1e-10
    assert not with_floor.drift and without.drift


def test_dataset_drift_validates_and_requires_fit() -> None:
    with pytest.raises(InvalidInput, match="Unknown correction 'holm'. Valid: bh, bonferroni, none"):
        DatasetDrift(correction="holm")
    with pytest.raises(InvalidInput, match="alpha must be within"):
        DatasetDrift(alpha=2)
    with pytest.raises(NotFittedError, match="before fit"):
        DatasetDrift().score(pd.DataFrame({"x": [1.0]}))
    detector = DatasetDrift().fit(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(InvalidInput, match="lacks column"):
        detector.score(pd.DataFrame({"y": [1.0]}))
    for floors, message, where in [
        ({"ks_d": 0.1}, "Unknown effect measure 'ks_d'. Valid: wasserstein_sd, total_variation", "floors.ks_d"),
        ({"wasserstein_sd": -0.1}, "must be a finite number ≥ 0", "floors.wasserstein_sd"),
        ({"total_variation": float("nan")}, "must be a finite number ≥ 0", "floors.total_variation"),
    ]:
        with pytest.raises(InvalidInput, match=message) as info:
            DatasetDrift(floors=floors)
        assert info.value.field == where


def test_arrays_and_frames_give_the_same_report() -> None:
    """The CLI hands columns (arrays, codes) read by Arrow; the Python API hands DataFrames: same statistics."""
    from mloop.monitoring.drift import Coded

    rng = np.random.default_rng(8)
    frames = [pd.DataFrame({"x": rng.normal(s, size=2000), "c": rng.choice(["a", "b", None], 2000, p=[0.5 - s, 0.4 + s, 0.1]),
                            "k": rng.poisson(2 + 5 * s, size=2000)}) for s in (0.0, 0.1)]
    by_frame = DatasetDrift().fit(frames[0]).score(frames[1])

    def columns(frame: pd.DataFrame) -> dict[str, object]:
        codes, labels = pd.factorize(frame["c"])
        return {"x": frame["x"].to_numpy(), "c": Coded(codes, [str(v) for v in labels]), "k": frame["k"].to_numpy()}

    by_columns = DatasetDrift().fit(columns(frames[0])).score(columns(frames[1]))
    assert by_columns == by_frame and by_frame.drifted() == ["x", "c", "k"]
    with pytest.raises(InvalidInput, match="held numbers in the reference and holds categories now") as info:
        DatasetDrift().fit(columns(frames[0])).score({**columns(frames[1]), "x": Coded(np.zeros(3, dtype=np.int64), ["a"])})
    assert info.value.field == "x"


def test_adwin_one_sided_ignores_improvement() -> None:
    rng = np.random.default_rng(0)
    better = np.r_[rng.random(3000) < 0.4, rng.random(3000) < 0.1].astype(float)
    worse = better[::-1]
    one_sided, two_sided, on_worse = ADWIN(one_sided=True), ADWIN(one_sided=False), ADWIN(one_sided=True)
    assert not any([one_sided.update(x) for x in better])
    assert any([two_sided.update(x) for x in better])
    assert any([on_worse.update(x) for x in worse])


def test_automatic_choice_by_dtype_and_size() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({
        "x": rng.normal(size=2000),
        "count": rng.poisson(2, size=2000),  # few distinct numbers: compared as categories
        "flag": rng.random(2000) < 0.3,
        "city": rng.choice(["a", "b", "c"], 2000),
        "user": [f"u{i}" for i in range(2000)],  # an ID: one level per row
    })
    detector = DatasetDrift().fit(ref)
    assert {n: t.name for n, t in detector.tests_.items()} == {
        "x": "ks", "count": "chi_square", "flag": "chi_square", "city": "chi_square", "user": "chi_square",
    }
    user = detector.tests_["user"]
    assert len(user.categories_) == 49 and user.pooled_ == 1951  # type: ignore[union-attr]
    report = detector.score(ref.sample(500, random_state=1))
    assert not report.drift and report.drifted() == []
    small = DatasetDrift().fit(ref.head(40))
    assert len(small.tests_["user"].categories_) == 7  # type: ignore[union-attr]  # min(50, 40 / 5) levels, rarest pooled


def test_prediction_drift_is_reported_apart_from_the_features() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "score": rng.beta(2, 5, size=3000)})
    cur = pd.DataFrame({"x": rng.normal(size=1000), "score": rng.beta(5, 2, size=1000)})
    report = DatasetDrift(prediction="score").fit(ref).score(cur)
    assert [f.name for f in report.features] == ["x"] and not report.drift
    assert report.prediction is not None and report.prediction.drift and report.prediction.test == "ks"
    with pytest.raises(InvalidInput, match="no prediction column 'proba'") as info:
        DatasetDrift(prediction="proba").fit(ref)
    assert info.value.field == "prediction"


def test_tests_can_be_chosen_per_feature_and_are_checked() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)})
    detector = DatasetDrift(tests={"x": "psi"}).fit(ref)
    assert detector.score(ref).features[0].test == "psi"
    with pytest.raises(InvalidInput, match="Unknown test 'kolmogorov' for feature 'x'"):
        DatasetDrift(tests={"x": "kolmogorov"})
    with pytest.raises(InvalidInput, match="needs a numeric feature") as info:
        DatasetDrift(tests={"c": "ks"}).fit(ref)
    assert info.value.field == "tests.c"
    with pytest.raises(InvalidInput, match="reference lacks"):
        DatasetDrift(tests={"nope": "ks"}).fit(ref)


def test_an_integer_feature_with_one_missing_value_is_not_a_new_world() -> None:
    """A window read through DuckDB turns an integer column with one NULL into nullable Int64 (floats once read):
    its categories must still be the reference's."""
    ref = pd.DataFrame({"k": np.arange(2000) % 5})
    cur = pd.DataFrame({"k": pd.array([*(np.arange(1999) % 5), None], dtype="Int64")})
    feature = DatasetDrift().fit(ref).score(cur).features[0]
    assert feature.test == "chi_square" and feature.effect_size < 0.01 and not feature.drift


def test_numbers_held_as_python_objects_stay_numbers_and_errors_name_the_feature() -> None:
    from mloop.monitoring.drift import Coded

    rng = np.random.default_rng(9)
    values = [float(v) for v in rng.normal(size=300)]
    with_none = DatasetDrift().fit({"x": [*values[:-1], None]})
    assert with_none.tests_["x"].name == "ks"
    frame = pd.DataFrame({"x": np.array([*values[:-1], None], dtype=object)})
    assert DatasetDrift().fit(frame).tests_["x"].name == "ks"
    with pytest.raises(InvalidInput, match="Feature 'x': current has no finite values") as info:
        with_none.score({"x": np.full(50, np.nan)})
    assert info.value.field == "x"
    with pytest.raises(InvalidInput, match=r"codes must lie within \[-1, 1\]") as info:
        DatasetDrift().fit({"c": Coded(np.array([0, 1, 2]), ["a", "b"])})
    assert info.value.field == "c"
    with pytest.raises(InvalidInput, match="column 'x' more than once"):
        DatasetDrift().fit(pd.DataFrame([[1.0, 2.0]], columns=["x", "x"]))
