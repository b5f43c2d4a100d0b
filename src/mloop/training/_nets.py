"""Two more networks mloop registers, serves and explains: a small transformer encoder that classifies texts with its
own vocabulary, and a small CNN for scikit-learn's bundled 8×8 digits.

Both train with :class:`~mloop.training.Trainer` (``module(*inputs)`` gives logits), score a table through
``predict_proba`` like a scikit-learn classifier, and rebuild from ``config()`` plus a ``state_dict`` (no pickle).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mloop.errors import InvalidInput

PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"
SPECIALS = (PAD, UNK, CLS)  # ids 0, 1, 2 in every vocabulary
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
POOLINGS = ("mean", "cls")
PIXELS = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]  # load_digits(as_frame=True)'s column names


def tokenize(text: Any) -> list[str]:
    """Lower-cased words and numbers (``don't`` stays one word); anything else separates them.

    >>> tokenize("Don't PANIC: 42 towels!")
    ["don't", 'panic', '42', 'towels']
    """
    return WORD.findall(str(text).lower()) if isinstance(text, str) else []


def build_vocab(texts: Iterable[str], *, max_size: int = 20_000, min_count: int = 2) -> list[str]:
    """The specials, then the words seen at least ``min_count`` times, most frequent first (ties alphabetical).

    >>> build_vocab(["the cat", "the dog", "a dog"])
    ['<pad>', '<unk>', '<cls>', 'dog', 'the']
    """
    counts = Counter(t for text in texts for t in tokenize(text))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return [*SPECIALS, *words[: max(0, max_size - len(SPECIALS))]]


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInput(f"{name} must be a positive integer, got {value!r}.", field=name)


def device_of(module: nn.Module) -> torch.device:
    """Where a module's weights are (the trainer leaves a network on its GPU): its inputs go there, its outputs come back."""
    return next(module.parameters()).device


class EncoderBlock(nn.Module):
    """Pre-norm self-attention then a feed-forward layer, each residual. With ``keep`` set, the last call's attention
    weights stay in ``weights`` as ``(batch, heads, queries, keys)`` (each row sums to 1 over the unpadded keys)."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, dim))
        self.drop = nn.Dropout(dropout)
        self.keep = False
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        out, weights = self.attn(h, h, h, key_padding_mask=pad, need_weights=True, average_attn_weights=False)
        self.weights = weights.detach() if self.keep else None
        x = x + self.drop(out)
        return x + self.drop(self.ff(self.norm2(x)))  # type: ignore[no-any-return]


class TextTransformer(nn.Module):
    """Logits of ``classes`` classes from token ids ``(batch, length)``: token plus learned position embeddings, a
    ``<cls>`` token first, ``layers`` encoder blocks, mean (over real tokens) or ``<cls>`` pooling, a linear head.
    Its vocabulary travels with it, so ``predict_proba`` takes a frame with the text column ``column``."""

    def __init__(self, vocab: Sequence[str], *, column: str = "text", classes: int = 2, labels: Sequence[str] | None = None, dim: int = 64,
                 heads: int = 4, layers: int = 2, ff: int = 128, max_len: int = 128, pooling: str = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        _positive(dim=dim, heads=heads, layers=layers, ff=ff, max_len=max_len, classes=classes)
        if list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise InvalidInput(f"A vocabulary starts with {list(SPECIALS)}; got {list(vocab[:3])}.", field="vocab")
        if dim % heads:
            raise InvalidInput(f"dim must be a multiple of heads, got dim={dim}, heads={heads}.", field="heads")
        if pooling not in POOLINGS:
            raise InvalidInput(f"Unknown pooling {pooling!r}. Valid: {', '.join(POOLINGS)}.", field="pooling")
        if labels is not None and len(labels) != classes:
            raise InvalidInput(f"labels names {len(labels)} classes for classes={classes}.", field="labels")
        self.vocab = list(vocab)
        self.column, self.classes, self.labels = column, classes, None if labels is None else [str(v) for v in labels]
        self.dim, self.heads, self.layers, self.ff, self.max_len, self.pooling, self.dropout = dim, heads, layers, ff, max_len, pooling, dropout
        self.token_embedding = nn.Embedding(len(self.vocab), dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.drop = nn.Dropout(dropout)
        self._index: dict[str, int] | None = None

    def config(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "column": self.column, "classes": self.classes, "labels": self.labels, "dim": self.dim, "heads": self.heads,
                "layers": self.layers, "ff": self.ff, "max_len": self.max_len, "pooling": self.pooling, "dropout": self.dropout}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextTransformer:
        return cls(config["vocab"], **{k: v for k, v in config.items() if k != "vocab"})

    @property
    def feature_names(self) -> list[str]:
        return [self.column]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits(ids, ids == 0)

    def logits(self, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Logits with an explicit padding mask (explainers pass the input's mask for their baselines too)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.token_embedding(ids) + self.position_embedding(positions)[None])
        for block in self.blocks:
            x = block(x, pad)
        x = self.norm(x)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            keep = (~pad).unsqueeze(-1).to(x.dtype)
            pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)  # type: ignore[no-any-return]

    # -- texts in, tensors out -------------------------------------------------------------------------------
    def texts_of(self, rows: pd.DataFrame | pd.Series | Sequence[str]) -> list[str]:
        if isinstance(rows, pd.DataFrame):
            if self.column not in rows.columns:
                raise InvalidInput(f"Input lacks the text column {self.column!r} of the network.", field=self.column)
            rows = rows[self.column]
        return [v if isinstance(v, str) else "" for v in list(rows)]

    def tokens(self, text: str) -> list[str]:
        """The tokens the network reads for ``text``: ``<cls>``, then its words (unknown ones as ``<unk>``), cut at max_len."""
        index = self._lookup()
        return [CLS, *(w if w in index else UNK for w in tokenize(text))][: self.max_len]

    def encode(self, rows: pd.DataFrame | pd.Series | Sequence[str], length: int | None = None) -> torch.Tensor:
        """Token ids ``(rows, length)``, padded with 0 to ``length`` (default: the longest row, at most max_len)."""
        index = self._lookup()
        seqs = [[index[t] for t in self.tokens(text)] for text in self.texts_of(rows)]
        width = min(self.max_len, length or max((len(s) for s in seqs), default=1))
        out = np.zeros((len(seqs), width), dtype=np.int64)
        for i, seq in enumerate(seqs):
            out[i, : min(width, len(seq))] = seq[:width]
        return torch.from_numpy(out)

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.vocab)}
        return self._index

    def predict_proba(self, rows: pd.DataFrame | pd.Series | Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Class probabilities, one row per text (batches padded to their own longest text)."""
        texts = self.texts_of(rows)
        device = device_of(self)  # where the trainer left it
        self.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                out.append(torch.softmax(self(self.encode(texts[i : i + batch_size]).to(device)), dim=1).cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, self.classes))

    def predict(self, rows: pd.DataFrame | pd.Series | Sequence[str]) -> np.ndarray:
        return np.argmax(self.predict_proba(rows), axis=1)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_index"] = None
        return state


def text_transformer(texts: Sequence[str], labels: Any, *, column: str = "text", class_names: Sequence[str] | None = None,
                     max_vocab: int = 20_000, min_count: int = 2, max_len: int = 128, dim: int = 64, heads: int = 4, layers: int = 2,
                     ff: int = 128, pooling: str = "mean", dropout: float = 0.1, seed: int = 0) -> TextTransformer:
    """An untrained TextTransformer whose vocabulary is built from the training ``texts``; ``labels`` are class
    indices 0..k-1 (``class_names`` names them)."""
    y = np.asarray(labels)
    if len(y) != len(texts):
        raise InvalidInput(f"labels has {len(y)} values for {len(texts)} texts.", field="labels")
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise InvalidInput("labels must be class indices 0..k-1.", field="labels")
    classes = max(2, int(y.max()) + 1)
    torch.manual_seed(seed)
    return TextTransformer(build_vocab(texts, max_size=max_vocab, min_count=min_count), column=column, classes=classes, labels=class_names,
                           dim=dim, heads=heads, layers=layers, ff=ff, max_len=max_len, pooling=pooling, dropout=dropout)


def text_tensors(net: TextTransformer, texts: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, label)`` for the trainer: every text padded to one length (the longest, at most max_len)."""
    ids = net.encode(texts)
    y = np.asarray(labels)
    if len(y) != len(ids) or y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= net.classes)):
        raise InvalidInput(f"labels must hold one class index 0..{net.classes - 1} per text.", field="labels")
    return ids, torch.from_numpy(y.astype(np.int64))


class DigitsCNN(nn.Module):
    """Logits of ``classes`` classes from ``side``×``side`` grey images given as ``(batch, side*side)`` pixels (scikit-learn's
    digits: 8×8, values 0..16, divided by ``scale`` inside): two 3×3 conv layers (batch-normalised, as every conv here), a 2×2 max-pool, a last 3×3 conv
    block (``last``, where GradCAM looks) at half the resolution, global average pooling and a linear head (so GradCAM is CAM)."""

    def __init__(self, *, classes: int = 10, channels: Sequence[int] = (16, 32, 64), dropout: float = 0.1, scale: float = 16.0,
                 side: int = 8, columns: Sequence[str] | None = None) -> None:
        super().__init__()
        _positive(classes=classes, side=side)
        if len(channels) != 3 or any(not isinstance(c, int) or c < 1 for c in channels):
            raise InvalidInput(f"channels must be three positive integers, got {list(channels)}.", field="channels")
        if side % 2 or not scale > 0:
            raise InvalidInput(f"side must be even and scale above 0, got side={side}, scale={scale}.", field="side")
        self.classes, self.channels, self.dropout, self.scale, self.side = classes, list(channels), dropout, float(scale), side
        self.columns = list(columns) if columns is not None else (list(PIXELS) if side == 8 else [f"pixel_{i}" for i in range(side * side)])
        if len(self.columns) != side * side:
            raise InvalidInput(f"columns names {len(self.columns)} pixels for {side}×{side} images.", field="columns")
        c1, c2, c3 = self.channels
        self.features = nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.Conv2d(c1, c2, 3, padding=1),
                                      nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2))
        self.last = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=1), nn.BatchNorm2d(c3), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c3, classes))

    def config(self) -> dict[str, Any]:
        return {"classes": self.classes, "channels": self.channels, "dropout": self.dropout, "scale": self.scale, "side": self.side,
                "columns": self.columns}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DigitsCNN:
        return cls(**config)

    @property
    def feature_names(self) -> list[str]:
        return list(self.columns)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(-1, 1, self.side, self.side) / self.scale
        return self.head(self.last(self.features(x)))  # type: ignore[no-any-return]

    def pixels(self, rows: pd.DataFrame | np.ndarray) -> torch.Tensor:
        """Rows as a float tensor ``(rows, side*side)``: a frame with the pixel columns, or an array of rows or images."""
        if isinstance(rows, pd.DataFrame):
            missing = [c for c in self.columns if c not in rows.columns]
            if missing:
                raise InvalidInput(f"Input lacks pixel column(s) {missing[:3]} of the network.", field=missing[0])
            values = rows[self.columns].to_numpy(dtype=np.float32, na_value=0.0)
        else:
            values = np.asarray(rows, dtype=np.float32)
            if values.ndim == 3 and values.shape[1:] == (self.side, self.side):
                values = values.reshape(len(values), -1)
            if values.ndim != 2 or values.shape[1] != self.side * self.side:
                raise InvalidInput(f"An array input needs shape (rows, {self.side * self.side}) or (rows, {self.side}, {self.side}); "
                                   f"got {values.shape}.", field="rows")
        return torch.from_numpy(np.nan_to_num(np.ascontiguousarray(values, dtype=np.float32)))

    def predict_proba(self, rows: pd.DataFrame | np.ndarray, batch_size: int = 4096) -> np.ndarray:
        x, device = self.pixels(rows), device_of(self)
        self.eval()
        with torch.inference_mode():
            out = [torch.softmax(self(x[i : i + batch_size].to(device)), dim=1).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, self.classes))

    def predict(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(rows), axis=1)


def digits_cnn(*, classes: int = 10, channels: Sequence[int] = (16, 32, 64), dropout: float = 0.1, seed: int = 0) -> DigitsCNN:
    """An untrained DigitsCNN for ``sklearn.datasets.load_digits`` (seeded)."""
    torch.manual_seed(seed)
    return DigitsCNN(classes=classes, channels=channels, dropout=dropout)


def digits_tensors(net: DigitsCNN, rows: pd.DataFrame | np.ndarray, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixels, label)`` for the trainer."""
    x = net.pixels(rows)
    y = np.asarray(labels)
    if len(y) != len(x) or y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= net.classes)):
        raise InvalidInput(f"labels must hold one class index 0..{net.classes - 1} per image.", field="labels")
    return x, torch.from_numpy(y.astype(np.int64))
