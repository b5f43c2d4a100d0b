from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift import PSI, JensenShannon, KSTest, MMDTest, Wasserstein


def test_psi_by_hand_on_categories() -> None:
    ref = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    cur = np.array(["a"] * 80 + ["b"] * 20, dtype=object)
    result = PSI().fit(ref).score(cur)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert result.statistic == pytest.approx(expected, rel=1e-3)
    table = np.array([[50, 50], [80, 20]])
    assert result.p_value == pytest.approx(stats.chi2_contingency(table, correction=False)[1], abs=1e-9)


def test_psi_bins_are_reference_quantiles_and_missing_values_have_a_bin() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=10_000)
    psi = PSI(bins=10).fit(ref)
    assert len(psi.bin_edges_) == 9
    np.testing.assert_allclose(psi.reference_counts_[:-1], 1000, atol=1)
    with_missing = np.r_[rng.normal(size=900), np.full(100, np.nan)]
    assert psi.score(with_missing).statistic > psi.score(rng.normal(size=1000)).statistic


def test_jensen_shannon_matches_scipy_on_the_bins() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=3000), rng.normal(0.3, 1.2, size=2000)
    js = JensenShannon(bins=8).fit(ref)
    result = js.score(cur)
    cur_counts = js.counts(cur)
    expected = jensenshannon(js.reference_counts_ / js.reference_counts_.sum(), cur_counts / cur_counts.sum(), base=2)
    assert result.statistic == pytest.approx(expected, abs=1e-12) and 0 < result.statistic < 1


def test_wasserstein_is_scipys_over_the_reference_spread() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(0, 2, size=3000), rng.normal(1, 2, size=3000)
    result = Wasserstein().fit(ref).score(cur)
    assert result.statistic == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-12)
    assert result.p_value == KSTest().fit(ref).score(cur).p_value


@pytest.mark.slow
def test_mmd_permutation_test_is_calibrated_and_seeded() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(400, 4))
    mmd = MMDTest(n_permutations=100, seed=7).fit(ref)
    p_values = [mmd.score(rng.normal(size=(200, 4))).p_value for _ in range(20)]
    assert sum(p < 0.05 for p in p_values) <= 3
    shifted = rng.normal(size=(200, 4))
    shifted[:, 2] += 0.5
    assert mmd.score(shifted).p_value < 0.02
    assert MMDTest(n_permutations=100, seed=7).fit(ref).score(shifted) == mmd.score(shifted)


def test_estimators_validate_and_require_fit() -> None:
    with pytest.raises(InvalidInput, match="bins must be within"):
        PSI(bins=1)
    with pytest.raises(NotFittedError, match="before fit"):
        PSI().score(np.ones(3))
    with pytest.raises(NotFittedError, match="before fit"):
        Wasserstein().score(np.ones(3))
    with pytest.raises(InvalidInput, match="n_permutations"):
        MMDTest(n_permutations=1)
    with pytest.raises(InvalidInput, match="current has 2 features, the reference 3"):
        MMDTest(n_permutations=10).fit(np.random.default_rng(0).normal(size=(20, 3))).score(np.ones((20, 2)))


def test_tail_probabilities_match_scipy_special_across_their_range() -> None:
    """The Kolmogorov and chi-square tails are ours (importing scipy.special costs more than a report's statistics);
    both are held to SciPy's to 1e-12, relative in the far tail."""
    from scipy import special

    from mloop.monitoring.drift._binned import chi2_sf
    from mloop.monitoring.drift._univariate import kolmogorov_sf

    for x in np.concatenate([np.linspace(0.0, 3.0, 601), np.linspace(3.0, 25.0, 89)]):
        expected = float(special.kolmogorov(x))
        assert kolmogorov_sf(float(x)) == pytest.approx(expected, rel=1e-12, abs=1e-14 if expected > 1e-3 else 0)
    for df in (1, 2, 3, 7, 24, 49):
        for x in np.logspace(-4, 3.3, 150):
            assert chi2_sf(float(x), df) == pytest.approx(float(special.chdtrc(df, x)), rel=1e-12, abs=1e-300)
