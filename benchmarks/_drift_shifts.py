"""The shifts of the power / A-A table (numpy only, so both venvs draw them): each cell is a shift class with a
size, drawn as one reference and one current sample of n values per seed.

Numbers: the reference is N(0, 1); the current moves its mean by δ σ, scales its spread, or changes its shape at
equal mean and variance (Student's t with 5 or 3 degrees of freedom, standardised: heavier tails; a two-bump
mixture ±a with spread √(1 − a²): bimodal). Categories: five levels with shares ∝ 1 … 3, moved by total
variation t (t taken from the largest level and given to the smallest)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = np.array([f"level_{k}" for k in range(5)], dtype=object)
SHARES = np.linspace(1.0, 3.0, 5) / np.linspace(1.0, 3.0, 5).sum()


@dataclass(frozen=True)
class Cell:
    """One shift: ``kind`` (mean, scale, tails, bimodal, category, none) and its size."""

    kind: str
    size: float
    label: str

    @property
    def categorical(self) -> bool:
        return self.kind in ("category", "none_category")


CELLS = [
    *(Cell("mean", d, f"mean +{d:g} σ") for d in (0.05, 0.1, 0.15, 0.25, 0.5)),
    *(Cell("scale", s, f"scale ×{s:g} ({(s - 1) * 100:+.0f} %)") for s in (0.5, 0.75, 0.9, 1.1, 1.25, 1.5)),
    Cell("tails", 5, "heavier tails (t, 5 df)"),
    Cell("tails", 3, "heavier tails (t, 3 df)"),
    Cell("bimodal", 0.6, "bimodal (±0.6)"),
    Cell("bimodal", 0.8, "bimodal (±0.8)"),
    *(Cell("category", t, f"category TV {t:g}") for t in (0.02, 0.05, 0.1, 0.2)),
]
#: The targets: detection ≥ 90 % from 10k rows up in these cells.
TARGETS = {"mean +0.15 σ", "mean +0.25 σ", "mean +0.5 σ", "scale ×0.5 (-50 %)", "scale ×0.75 (-25 %)", "scale ×1.25 (+25 %)",
           "scale ×1.5 (+50 %)", "category TV 0.1", "category TV 0.2"}


def _numbers(cell: Cell, n: int, rng: np.random.Generator) -> np.ndarray:
    if cell.kind == "mean":
        return rng.normal(cell.size, 1.0, n)
    if cell.kind == "scale":
        return rng.normal(0.0, cell.size, n)
    if cell.kind == "tails":
        df = cell.size
        return rng.standard_t(df, n) * np.sqrt((df - 2) / df)
    if cell.kind == "bimodal":
        a = cell.size
        return rng.choice([-a, a], n) + rng.normal(0.0, np.sqrt(1 - a * a), n)
    raise ValueError(cell.kind)


def _shares(tv: float) -> np.ndarray:
    moved = SHARES.copy()
    moved[-1] -= tv
    moved[0] += tv
    return moved


def pair(cell: Cell, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference, current) of ``n`` values each for one seed."""
    rng = np.random.default_rng([seed, n, CELLS.index(cell) if cell in CELLS else 99])
    if cell.categorical:
        return rng.choice(LEVELS, n, p=SHARES), rng.choice(LEVELS, n, p=_shares(cell.size))
    return rng.normal(0.0, 1.0, n), _numbers(cell, n, rng)
