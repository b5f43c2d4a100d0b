"""Concept drift on an error stream: River's ADWIN, optionally one-sided (alarm on degradation only)."""

from __future__ import annotations

from mloop.errors import InvalidInput


class ADWIN:
    """Adaptive windowing (Bifet & Gavaldà) over a stream of losses, via ``river.drift.ADWIN``.

    With ``one_sided=True`` a detected change counts only when the mean loss went *up*.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stream = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4].astype(float)
    >>> detector = ADWIN()
    >>> hits = [i for i, x in enumerate(stream) if detector.update(x)]
    >>> 2000 <= hits[0] < 2300
    True
    """

    def __init__(self, *, delta: float = 0.002, one_sided: bool = True, clock: int = 32) -> None:
        if not 0.0 < delta < 1.0:
            raise InvalidInput(f"delta must be within (0, 1), got {delta}.", field="delta")
        from river.drift import ADWIN as RiverADWIN

        self.delta = delta
        self.one_sided = one_sided
        self._detector = RiverADWIN(delta=delta, clock=clock)
        self.drift_detected = False
        self.n_seen = 0

    @property
    def mean(self) -> float:
        return float(self._detector.estimation)

    def update(self, loss: float) -> bool:
        """Feed one loss; True when a (degrading, if one-sided) change was detected at this point."""
        before = self.mean
        self._detector.update(float(loss))
        self.n_seen += 1
        detected = bool(self._detector.drift_detected)
        if detected and self.one_sided:
            detected = self.mean > before
        self.drift_detected = detected
        return detected
