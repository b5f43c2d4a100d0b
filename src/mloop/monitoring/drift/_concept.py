"""Concept drift on an error or loss stream, via River's detectors, with a one-sided option.

Every detector has the same surface: ``update(x) -> bool`` (True when a change is detected at this point),
``drift_detected`` and ``n_seen``. With ``one_sided=True`` (the default) a detected change counts only when the
stream's recent mean is above its mean before the change: the model got worse, not better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from mloop.errors import InvalidInput

_RECENT = 30  # values that stand for "after the change" in the one-sided check


class _Detector(ABC):
    """Shared mechanics; subclasses build the River detector in ``_make``. Not thread-safe: one stream each."""

    binary = False

    def __init__(self, *, one_sided: bool = True) -> None:
        self.one_sided = one_sided
        self._detector = self._make()
        self.drift_detected = False
        self.n_seen = 0
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._sum_before = 0.0
        self._n_before = 0

    @abstractmethod
    def _make(self) -> Any:
        """A fresh River detector with this object's parameters."""

    def _feed(self, x: float) -> bool:
        self._detector.update(bool(x) if self.binary else x)
        return bool(self._detector.drift_detected)

    def update(self, x: float) -> bool:
        """Feed one value (a loss; 0/1 errors for DDM and EDDM); True when a change is detected here."""
        x = float(x)
        if self.binary and x not in (0.0, 1.0):
            raise InvalidInput(f"{type(self).__name__} takes 0/1 errors, got {x}.", field="x")
        if len(self._recent) == self._recent.maxlen:
            self._sum_before += self._recent[0]
            self._n_before += 1
        self._recent.append(x)
        self.n_seen += 1
        detected = self._feed(x)
        if detected and self.one_sided and self._n_before:
            detected = sum(self._recent) / len(self._recent) > self._sum_before / self._n_before
        if detected:  # the change is the new normal: compare later changes with it
            self._sum_before, self._n_before = 0.0, 0
            self._recent.clear()
        self.drift_detected = detected
        return detected


class ADWIN(_Detector):
    """Adaptive windowing (Bifet & Gavaldà), ``river.drift.ADWIN``: any bounded or unbounded loss stream.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stream = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4].astype(float)
    >>> detector = ADWIN()
    >>> hits = [i for i, x in enumerate(stream) if detector.update(x)]
    >>> 2000 <= hits[0] < 2300
    True
    """

    def __init__(self, *, delta: float = 0.002, clock: int = 32, one_sided: bool = True) -> None:
        if not 0.0 < delta < 1.0:
            raise InvalidInput(f"delta must be within (0, 1), got {delta}.", field="delta")
        self.delta, self.clock = delta, clock
        super().__init__(one_sided=one_sided)

    def _make(self) -> Any:
        from river.drift import ADWIN as RiverADWIN

        return RiverADWIN(delta=self.delta, clock=self.clock)

    @property
    def mean(self) -> float:
        return float(self._detector.estimation)


class PageHinkley(_Detector):
    """Page–Hinkley cumulative-sum test, ``river.drift.PageHinkley``; one-sided uses River's ``mode='up'``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> stream = np.r_[rng.normal(0.2, 0.05, 3000), rng.normal(0.5, 0.05, 3000)]
    >>> detector = PageHinkley(threshold=10)
    >>> hits = [i for i, x in enumerate(stream) if detector.update(x)]
    >>> 3000 <= hits[0] < 3100
    True
    """

    def __init__(self, *, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0, alpha: float = 0.9999, one_sided: bool = True) -> None:
        if threshold <= 0:
            raise InvalidInput(f"threshold must be positive, got {threshold}.", field="threshold")
        self.min_instances, self.delta, self.threshold, self.alpha = min_instances, delta, threshold, alpha
        super().__init__(one_sided=one_sided)

    def _make(self) -> Any:
        from river.drift import PageHinkley as RiverPH

        mode = "up" if self.one_sided else "both"
        return RiverPH(min_instances=self.min_instances, delta=self.delta, threshold=self.threshold, alpha=self.alpha, mode=mode)


class DDM(_Detector):
    """Drift Detection Method (Gama et al.) on 0/1 errors, ``river.drift.binary.DDM``: alarms when the error
    rate rises past its best level by ``drift_threshold`` standard deviations (one-sided by construction)."""

    binary = True

    def __init__(self, *, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0, one_sided: bool = True) -> None:
        self.warm_start, self.warning_threshold, self.drift_threshold = warm_start, warning_threshold, drift_threshold
        super().__init__(one_sided=one_sided)

    def _make(self) -> Any:
        from river.drift.binary import DDM as RiverDDM

        return RiverDDM(warm_start=self.warm_start, warning_threshold=self.warning_threshold, drift_threshold=self.drift_threshold)


class EDDM(_Detector):
    """Early DDM (Baena-García et al.) on 0/1 errors, ``river.drift.binary.EDDM``: watches the distance
    between errors, which reacts earlier to gradual drift."""

    binary = True

    def __init__(self, *, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9, one_sided: bool = True) -> None:
        self.warm_start, self.alpha, self.beta = warm_start, alpha, beta
        super().__init__(one_sided=one_sided)

    def _make(self) -> Any:
        from river.drift.binary import EDDM as RiverEDDM

        return RiverEDDM(warm_start=self.warm_start, alpha=self.alpha, beta=self.beta)


class KSWIN(_Detector):
    """Kolmogorov–Smirnov windowing (Raab et al.), ``river.drift.KSWIN``: compares the newest ``stat_size``
    values with a sample of the older window; seeded, so runs repeat."""

    def __init__(self, *, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30, seed: int = 0, one_sided: bool = True) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInput(f"alpha must be within (0, 1), got {alpha}.", field="alpha")
        if stat_size >= window_size:
            raise InvalidInput(f"stat_size must be smaller than window_size, got {stat_size} >= {window_size}.", field="stat_size")
        self.alpha, self.window_size, self.stat_size, self.seed = alpha, window_size, stat_size, seed
        super().__init__(one_sided=one_sided)

    def _make(self) -> Any:
        from river.drift import KSWIN as RiverKSWIN

        return RiverKSWIN(alpha=self.alpha, window_size=self.window_size, stat_size=self.stat_size, seed=self.seed)


DETECTORS = {"adwin": ADWIN, "page_hinkley": PageHinkley, "ddm": DDM, "eddm": EDDM, "kswin": KSWIN}


def detector(name: str, **params: Any) -> _Detector:
    """A detector by name (for YAML and CLI): ``detector("page_hinkley", threshold=20)``."""
    cls = DETECTORS.get(name)
    if cls is None:
        raise InvalidInput(f"Unknown concept drift detector {name!r}. Valid: {', '.join(DETECTORS)}.", field="detector")
    return cls(**params)  # type: ignore[no-any-return]
