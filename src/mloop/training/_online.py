"""Models that learn online, from one mini-batch of labelled rows at a time (``partial_fit``): the closed loop's
adaptive response updates a champion with the feedback that arrived since its last update, each update a version.

Two kinds are provided, both plain scikit-learn style estimators over a DataFrame of the model's input columns:
:class:`OnlineClassifier` (scikit-learn parts: hashed categoricals, running scaling, logistic SGD) and
:class:`RiverClassifier` (any River classifier or pipeline, learnt row by row or by mini-batch as River can).
Any other estimator with ``partial_fit(X, y)`` works too.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from mloop.errors import InvalidInput

CLASSES = np.array([0, 1])


class OnlineClassifier(ClassifierMixin, BaseEstimator):
    """A binary classifier that learns from mini-batches: categorical columns hashed (``FeatureHasher``: a new level
    needs no refit), numeric columns scaled by their running mean and variance (missing values become the mean), a
    logistic model fit by SGD with a constant step so that it keeps adapting. ``fit`` makes ``epochs`` shuffled passes;
    ``partial_fit`` one pass over the rows it is given."""

    def __init__(self, categorical: list[str] | None = None, n_hashed: int = 4096, alpha: float = 1e-5, eta0: float = 0.002,
                 epochs: int = 3, seed: int = 0) -> None:
        self.categorical = categorical
        self.n_hashed = n_hashed
        self.alpha = alpha
        self.eta0 = eta0
        self.epochs = epochs
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any) -> OnlineClassifier:
        for attr in ("numeric_", "categorical_", "scaler_", "sgd_"):
            self.__dict__.pop(attr, None)
        rng = np.random.default_rng(self.seed)
        target = np.asarray(y).astype(int)
        for _ in range(max(1, self.epochs)):
            order = rng.permutation(len(X))
            self.partial_fit(X.iloc[order], target[order])
        return self

    def partial_fit(self, X: pd.DataFrame, y: Any, classes: Any = None) -> OnlineClassifier:
        """Learn from one more batch of rows (the columns are fixed by the first batch)."""
        from sklearn.linear_model import SGDClassifier
        from sklearn.preprocessing import StandardScaler

        frame = _frame(X)
        if not hasattr(self, "sgd_"):
            categorical = list(self.categorical) if self.categorical is not None else \
                [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
            self.categorical_ = categorical
            self.numeric_ = [str(c) for c in frame.columns if str(c) not in categorical]
            self.feature_names_in_ = np.array([str(c) for c in frame.columns], dtype=object)
            self.scaler_ = StandardScaler()
            self.sgd_ = SGDClassifier(loss="log_loss", alpha=self.alpha, learning_rate="constant", eta0=self.eta0, random_state=self.seed)
            self.classes_ = CLASSES
        numbers = frame[self.numeric_].to_numpy(dtype=float)
        if len(self.numeric_):
            self.scaler_.partial_fit(numbers)
        self.sgd_.partial_fit(self._design(frame, numbers), np.asarray(y).astype(int), classes=CLASSES)
        return self

    def _design(self, frame: pd.DataFrame, numbers: np.ndarray | None = None) -> Any:
        from scipy import sparse
        from sklearn.feature_extraction import FeatureHasher

        if numbers is None:
            numbers = frame[self.numeric_].to_numpy(dtype=float)
        if len(self.numeric_):
            scaled = self.scaler_.transform(numbers)
            scaled = np.where(np.isnan(scaled), 0.0, scaled)  # a missing number is its running mean
        else:
            scaled = np.zeros((len(frame), 0))
        tokens = [[f"{c}={v}" for c, v in zip(self.categorical_, row, strict=True)] for row in frame[self.categorical_].astype(str).to_numpy()]
        hashed = FeatureHasher(n_features=self.n_hashed, input_type="string").transform(tokens)
        return sparse.hstack([sparse.csr_matrix(scaled), hashed]).tocsr()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "sgd_"):
            raise InvalidInput("OnlineClassifier has learnt nothing yet: call fit or partial_fit first.", field="model")
        return np.asarray(self.sgd_.predict_proba(self._design(_frame(X))))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class RiverClassifier(ClassifierMixin, BaseEstimator):
    """A River classifier (or pipeline) as a scikit-learn style estimator over DataFrames: ``partial_fit`` learns the
    rows in order, one by one as River does (its mini-batch methods exist for a few models only), ``predict_proba``
    gives ``P(0), P(1)`` per row. ``fit`` starts again from a clone of the unfitted ``model``."""

    def __init__(self, model: Any = None) -> None:
        self.model = model

    def fit(self, X: pd.DataFrame, y: Any) -> RiverClassifier:
        if self.model is None:
            raise InvalidInput("RiverClassifier needs a River classifier: RiverClassifier(model=...).", field="model")
        self.river_ = self.model.clone()
        return self.partial_fit(X, y)

    def partial_fit(self, X: pd.DataFrame, y: Any, classes: Any = None) -> RiverClassifier:
        if not hasattr(self, "river_"):
            return self.fit(X, y)
        frame = _frame(X).reset_index(drop=True)
        target = pd.Series(np.asarray(y).astype(int), index=frame.index)
        self.classes_ = CLASSES
        self.feature_names_in_ = np.array([str(c) for c in frame.columns], dtype=object)
        for row, label in zip(_rows(frame), target, strict=True):
            self.river_.learn_one(row, bool(label))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not hasattr(self, "river_"):
            raise InvalidInput("RiverClassifier has learnt nothing yet: call fit or partial_fit first.", field="model")
        frame = _frame(X).reset_index(drop=True)
        positive = np.array([self.river_.predict_proba_one(row).get(True, 0.0) for row in _rows(frame)], dtype=float)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _frame(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise InvalidInput(f"an online model learns from a DataFrame of its input columns, got {type(X).__name__}.", field="X")
    return X


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as River takes them: a missing value is a key left out (River's models take sparse rows)."""
    return [{str(k): v for k, v in row.items() if not pd.isna(v)} for row in frame.to_dict(orient="records")]


def can_learn_online(model: Any) -> bool:
    """Whether a fitted model can be updated with one more batch (it has ``partial_fit``)."""
    return callable(getattr(model, "partial_fit", None))


def updated(model: Any, frame: pd.DataFrame, target: Any) -> Any:
    """A copy of ``model`` that has also learnt ``frame`` → ``target``; the model itself is left as it was (it is a
    registered version, and the update will be another)."""
    if not can_learn_online(model):
        raise InvalidInput(f"{type(model).__name__} cannot learn online: it has no partial_fit. Train the champion with an online recipe "
                           "(mloop.training:online, or mloop.training:river) to use the adaptive response.", field="model")
    twin = copy.deepcopy(model)
    if isinstance(twin, OnlineClassifier | RiverClassifier):
        return twin.partial_fit(frame, target)
    return twin.partial_fit(frame, np.asarray(target).astype(int), classes=CLASSES)


def online(frame: pd.DataFrame, target: str, *, seed: int = 0, categorical: list[str] | None = None, **params: Any) -> OnlineClassifier:
    """A recipe: an :class:`OnlineClassifier` fit on every column but ``target`` (``params`` are its own)."""
    features = [c for c in frame.columns if c != target]
    return OnlineClassifier(categorical=categorical, seed=seed, **params).fit(frame[features], frame[target].astype(int))


def river(frame: pd.DataFrame, target: str, *, model: str = "logistic", **params: Any) -> RiverClassifier:
    """A recipe: a River model fit on every column but ``target``, row by row in time order. ``model`` is
    ``logistic`` (one-hot categoricals, scaled numbers, logistic regression) or ``hoeffding`` (an adaptive Hoeffding
    tree, which replaces branches that stop working)."""
    import numbers

    from river import compose, linear_model, preprocessing, tree

    features = [c for c in frame.columns if c != target]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if model == "logistic":
        nums = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
        cats = compose.SelectType(str) | preprocessing.OneHotEncoder()
        learner: Any = (nums + cats) | linear_model.LogisticRegression(**params)
    elif model == "hoeffding":
        learner = tree.HoeffdingAdaptiveTreeClassifier(nominal_attributes=categorical, seed=params.pop("seed", 0), **params)
    else:
        raise InvalidInput(f"recipe.params.model: {model!r} is not a River model mloop knows (logistic, hoeffding).", field="recipe.params.model")
    return RiverClassifier(learner).fit(frame[features], frame[target].astype(int))
