"""One check list crossed with every concept drift detector."""

from __future__ import annotations

import numpy as np
import pytest

from mloop.errors import InvalidInput
from mloop.monitoring.drift import DETECTORS, detector

CHANGE = 4000


def _stream(binary: bool, before: float, after: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if binary:
        return np.r_[rng.random(CHANGE) < before, rng.random(CHANGE) < after].astype(float)
    return np.r_[rng.normal(before, 0.05, CHANGE), rng.normal(after, 0.05, CHANGE)].clip(0, None)


def _make(name: str, one_sided: bool = True):  # type: ignore[no-untyped-def]
    params = {"threshold": 10.0} if name == "page_hinkley" else {}
    return detector(name, one_sided=one_sided, **params)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "kswin" else n for n in DETECTORS])  # KSWIN: seconds each
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detects_a_degradation_soon_after_it_happens(name: str, seed: int) -> None:
    det = _make(name)
    stream = _stream(det.binary, 0.1, 0.4, seed)
    hits = [i for i, x in enumerate(stream) if det.update(x)]
    after = [h for h in hits if h >= CHANGE]
    assert after and after[0] - CHANGE < 1000, hits[:5]
    assert det.n_seen == len(stream)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "kswin" else n for n in DETECTORS if n not in ("ddm", "eddm")])
def test_one_sided_ignores_an_improvement(name: str) -> None:
    stream = _stream(False, 0.4, 0.1, 3)
    two_sided, one_sided = _make(name, one_sided=False), _make(name, one_sided=True)
    assert any([two_sided.update(x) for x in stream])
    one_sided = _make(name, one_sided=True)
    assert not any([one_sided.update(x) for x in stream][CHANGE - 10 :])


def test_binary_detectors_refuse_non_binary_values() -> None:
    with pytest.raises(InvalidInput, match="DDM takes 0/1 errors, got 0.5"):
        detector("ddm").update(0.5)


def test_unknown_detector_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInput, match="Unknown concept drift detector 'adwn'. Valid: adwin, page_hinkley, ddm, eddm, kswin"):
        detector("adwn")
    with pytest.raises(InvalidInput, match="stat_size must be smaller than window_size"):
        detector("kswin", window_size=20, stat_size=30)
