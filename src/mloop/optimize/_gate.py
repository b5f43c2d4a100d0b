"""The accuracy gate an optimised variant must pass: on the same held-out rows, the variant may lose at most
``max_loss`` accuracy against its parent — with confidence, not on the point estimate alone.

The rows are paired (each is scored by both models), so the statistic is the mean of ``correct_variant - correct_parent``
and its standard error over rows; the variant passes when the one-sided upper bound of its loss is within
``max_loss``. A naive gate compares the two accuracies as point estimates and passes variants that lose more than the
budget whenever the held-out rows happen to favour them (see benchmarks/optimize.py for both error rates).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mloop.errors import InvalidInput


@dataclass(frozen=True)
class GateDecision:
    """What decided the gate: both accuracies, the paired difference, its standard error and the loss bound."""

    passed: bool
    parent_accuracy: float
    variant_accuracy: float
    difference: float  # variant - parent (negative: the variant is less accurate)
    standard_error: float
    loss_upper_bound: float  # parent - variant, one-sided upper bound at the confidence level
    max_loss: float
    confidence: float
    rows: int
    agreement: float  # share of rows where both models predict the same class

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return (f"{verdict}: accuracy {self.variant_accuracy:.4f} vs parent {self.parent_accuracy:.4f} "
                f"(difference {self.difference * 100:+.2f} points, loss ≤ {self.loss_upper_bound * 100:.2f} points at "
                f"{self.confidence:.0%} confidence; budget {self.max_loss * 100:.2f}) over {self.rows:,} rows")


def accuracy_gate(labels: Any, parent_proba: Any, variant_proba: Any, *, max_loss: float = 0.01, confidence: float = 0.95) -> GateDecision:
    """Decide whether the variant keeps the parent's accuracy within ``max_loss`` (a share: 0.01 is one point)."""
    y = np.asarray(labels).astype(int)
    a, b = np.asarray(parent_proba, dtype=float), np.asarray(variant_proba, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or len(a) != len(y):
        raise InvalidInput(f"Parent and variant outputs must be [rows, classes] for the same {len(y)} rows; got {a.shape} and {b.shape}.",
                           field="rows")
    if len(y) < 30:
        raise InvalidInput(f"The gate needs at least 30 labelled rows, got {len(y)}.", field="rows")
    if not 0 <= max_loss < 1 or not 0.5 < confidence < 1:
        raise InvalidInput(f"max_loss must be within [0, 1) and confidence within (0.5, 1); got {max_loss}, {confidence}.", field="max_loss")
    pa, pb = a.argmax(axis=1), b.argmax(axis=1)
    d = (pb == y).astype(float) - (pa == y).astype(float)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    from scipy.stats import norm

    bound = -mean + float(norm.ppf(confidence)) * se
    return GateDecision(passed=bool(bound <= max_loss), parent_accuracy=float((pa == y).mean()), variant_accuracy=float((pb == y).mean()),
                        difference=mean, standard_error=se, loss_upper_bound=bound, max_loss=max_loss, confidence=confidence, rows=len(y),
                        agreement=float((pa == pb).mean()))
