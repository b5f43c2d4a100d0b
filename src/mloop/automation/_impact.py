"""Which inputs a model relies on: each feature's share of its permutation importance (the AUC lost when that
feature alone is shuffled), so that a data-drift alarm can be weighed by what it touched."""

from __future__ import annotations

from typing import Any

import pandas as pd


class _Scored:
    """A loaded model as scikit-learn's ``permutation_importance`` expects an estimator (only ``score`` is used)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, *args: Any) -> _Scored:
        return self

    def score(self, frame: pd.DataFrame) -> Any:
        return self.model.score(frame)


def importance_shares(model: Any, frame: pd.DataFrame, labels: pd.Series, *, repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Each column of ``frame``'s share of the AUC the model loses when it is shuffled (negative losses count as
    none); the shares sum to 1 unless no feature matters at all."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    scored = permutation_importance(_Scored(model), frame, labels.astype(int), n_repeats=repeats, random_state=seed,
                                    scoring=lambda est, x, y: roc_auc_score(y, est.score(x)))
    lost = {str(f): max(0.0, float(v)) for f, v in zip(frame.columns, scored.importances_mean, strict=True)}
    total = sum(lost.values())
    return {f: (v / total if total > 0 else 0.0) for f, v in lost.items()}
