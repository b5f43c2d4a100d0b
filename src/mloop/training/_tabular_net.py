"""A neural network for tables: numbers standardised inside the model, categories through embeddings, an MLP on top.

The module carries its own encoding (column names, category vocabularies, means and deviations), so a registered
version scores a DataFrame directly (``predict_proba``, like a scikit-learn classifier) and its ONNX twin takes the
same one-column-per-input feed as the gradient-boosted twins: the serving path does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mloop.errors import InvalidInput

MAX_VOCAB = 1000  # categories kept per column (the most frequent); the rest share the "unknown" embedding


def _embed_dim(levels: int) -> int:
    return int(min(16, max(2, round(1.6 * (levels + 1) ** 0.56))))


class TabularNet(nn.Module):
    """Logits of ``classes`` classes from ``num`` (float32, one column per numeric input, NaN for missing) and
    ``cat`` (int64 category codes; 0 is unknown or missing)."""

    def __init__(self, numeric: Sequence[str], vocab: dict[str, list[str]], *, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int] = (128, 64), dropout: float = 0.1, classes: int = 2) -> None:
        super().__init__()
        if not numeric and not vocab:
            raise InvalidInput("A TabularNet needs at least one input column.", field="columns")
        if any(h < 1 for h in hidden) or not 0.0 <= dropout < 1.0:
            raise InvalidInput(f"hidden sizes must be positive and dropout within [0, 1); got {list(hidden)}, {dropout}.", field="hidden")
        self.numeric = list(numeric)
        self.categorical = list(vocab)
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.hidden = list(hidden)
        self.dropout = dropout
        self.classes = classes
        self.gradient_checkpointing = False
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor([s if s > 0 else 1.0 for s in std], dtype=torch.float32))
        self.embeddings = nn.ModuleList(nn.Embedding(len(v) + 1, _embed_dim(len(v))) for v in self.vocab.values())
        width = len(self.numeric) + sum(_embed_dim(len(v)) for v in self.vocab.values())
        blocks: list[nn.Module] = []
        for h in self.hidden:
            blocks.append(nn.Sequential(nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)))
            width = h
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, classes)
        self._lookup: dict[str, dict[str, int]] | None = None

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def config(self) -> dict[str, Any]:
        """What rebuilds an untrained twin of this network (for distillation, pruning and data-parallel workers)."""
        return {"numeric": self.numeric, "vocab": self.vocab, "mean": self.mean.tolist(), "std": self.std.tolist(), "hidden": self.hidden,
                "dropout": self.dropout, "classes": self.classes}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TabularNet:
        return cls(config["numeric"], config["vocab"], mean=config["mean"], std=config["std"], hidden=config["hidden"],
                   dropout=config["dropout"], classes=config["classes"])

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.numeric:
            parts.append(torch.where(torch.isnan(num), torch.zeros_like(num), (num - self.mean) / self.std))
        parts.extend(e(cat[:, i]) for i, e in enumerate(self.embeddings))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(x)  # type: ignore[no-any-return]

    # -- tables in, tensors out --------------------------------------------------------------------------------
    def encode(self, rows: pd.DataFrame | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``rows`` (a frame with the input columns, or a matrix of the numeric ones) as the network's two tensors."""
        if isinstance(rows, np.ndarray):
            if self.categorical or rows.ndim != 2 or rows.shape[1] != len(self.numeric):
                raise InvalidInput(f"A matrix input needs exactly the {len(self.numeric)} numeric columns {self.numeric}.", field="rows")
            return torch.from_numpy(np.array(rows, dtype=np.float32)), torch.zeros((len(rows), 0), dtype=torch.int64)
        missing = [c for c in self.feature_names if c not in rows.columns]
        if missing:
            raise InvalidInput(f"Input lacks column(s) {missing} of the network.", field=missing[0])
        num = np.require(rows[self.numeric].to_numpy(dtype=np.float32, na_value=np.nan), requirements="W") if self.numeric else \
            np.zeros((len(rows), 0), np.float32)
        if self._lookup is None:
            self._lookup = {c: {v: i + 1 for i, v in enumerate(levels)} for c, levels in self.vocab.items()}
        cat = np.zeros((len(rows), len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            lookup = self._lookup[col]
            cat[:, j] = [lookup.get(v, 0) if isinstance(v, str) else 0 for v in rows[col].tolist()]
        return torch.from_numpy(num), torch.from_numpy(cat)

    def predict_proba(self, rows: pd.DataFrame | np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Class probabilities, one row per input row (scikit-learn's convention: the runtimes and explainers use it)."""
        num, cat = self.encode(rows)
        device = self.mean.device  # where the weights are (a network trained on a GPU may still be there)
        self.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(num), batch_size):
                logits = self(num[i : i + batch_size].to(device), cat[i : i + batch_size].to(device))
                out.append(torch.softmax(logits, dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, self.classes))

    def predict(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(rows), axis=1)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lookup"] = None  # rebuilt on first use
        return state


def tabular_net(frame: pd.DataFrame, target: str, *, numeric: list[str] | None = None, categorical: list[str] | None = None,
                hidden: Sequence[int] = (128, 64), dropout: float = 0.1, seed: int = 0) -> TabularNet:
    """An untrained network sized for ``frame``: numbers standardised with its means and deviations, each other column
    an embedding over its most frequent categories (up to 1,000)."""
    if target not in frame.columns:
        raise InvalidInput(f"Training frame lacks the target column {target!r}.", field="target")
    features = [c for c in frame.columns if c != target]
    if numeric is None:
        numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and c not in (categorical or [])]
    if categorical is None:
        categorical = [c for c in features if c not in numeric]
    classes = int(pd.Series(frame[target]).nunique())
    if classes < 2:
        raise InvalidInput(f"The target {target!r} has a single class; a classifier needs at least two.", field="target")
    vocab = {c: [str(v) for v in frame[c].dropna().astype(str).value_counts().index[:MAX_VOCAB]] for c in categorical}
    values = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan) if numeric else np.zeros((len(frame), 0))
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(values, axis=0)) if len(values) else np.zeros(len(numeric))
        std = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0) if len(values) else np.ones(len(numeric))
    torch.manual_seed(seed)
    return TabularNet(numeric, vocab, mean=mean.tolist(), std=std.tolist(), hidden=hidden, dropout=dropout, classes=max(2, classes))


def training_tensors(net: TabularNet, frame: pd.DataFrame, target: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(num, cat, label)`` for the trainer (labels as class indices 0..classes-1)."""
    num, cat = net.encode(frame)
    labels = pd.Series(frame[target]).to_numpy()
    if labels.dtype.kind not in "iub" or labels.min() < 0 or labels.max() >= net.classes:
        raise InvalidInput(f"The target {target!r} must hold class indices 0..{net.classes - 1}.", field="target")
    return num, cat, torch.from_numpy(labels.astype(np.int64))
