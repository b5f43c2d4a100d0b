"""The power / A-A table of mloop's drift defaults beside Evidently 0.7's, and the measurement that chose the floors.

For each shift class (mean, scale, shape at equal mean and variance, category shares; see _drift_shifts.py) and
each size (1k, 10k, 100k rows per side), ``--seeds`` reference/current pairs:

- mloop: the shifted feature is tested as a default ``DatasetDrift`` tests it (KS with W1/σ for numbers,
  chi-square with total variation for categories) and corrected by Benjamini–Hochberg together with 24 unshifted
  features (their p-values drawn uniform: the A/A rows below check that the real ones are), then held to the floor;
- Evidently: its data-drift preset's per-column verdict (KS / chi-square p < 0.05 up to 1,000 rows, normalised
  Wasserstein / Jensen–Shannon ≥ 0.1 above), uncorrected.

A/A: windows of the 25-column benchmark table (20 numeric, 5 categorical), both sides drawn afresh; a window
alarms when any feature is flagged. Targets at mloop's defaults: A/A ≤ 5 % at every size; detection ≥ 90 % from
10k rows up for mean ≥ 0.15 σ, scale changes ≥ 25 % and TV ≥ 0.1.

The floor sweep: each candidate floor's lowest detection over the target cells (10k and 100k rows), and its
detection of the trivial shifts it should ignore in huge samples; the chosen floor is the largest that keeps every
target cell at ≥ 97 % (a margin over 90 % for the seeds' noise).

    python benchmarks/drift_power.py [--seeds 100] [--markdown table.md] [--no-evidently] [--evidently-cache FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _drift_data import table  # noqa: E402
from _drift_shifts import CELLS, TARGETS, Cell, pair  # noqa: E402
from mloop.monitoring.drift import DEFAULT_FLOORS, DatasetDrift, adjust  # noqa: E402

console = Console()
EVIDENTLY = os.environ.get("EVIDENTLY_PYTHON", str(HERE / ".venv-evidently" / "bin" / "python"))
SIZES = (1_000, 10_000, 100_000)
ALPHA = 0.05
OTHERS = 24  # unshifted features beside the shifted one in a 25-feature window
NUMERIC_GRID = (0.05, 0.075, 0.1, 0.125, 0.15)
CATEGORY_GRID = (0.02, 0.03, 0.05, 0.075, 0.1)
MARGIN = 0.97


def _measure(cell: Cell, n: int, seeds: int) -> np.ndarray:
    """(BH-adjusted p, effect) of the shifted feature per seed, under mloop's default test for it."""
    rows = []
    for seed in range(seeds):
        ref, cur = pair(cell, n, seed)
        feature = DatasetDrift().fit({"x": ref}).score({"x": cur}).features[0]
        nulls = np.random.default_rng([seed, n, 7]).uniform(size=OTHERS)
        rows.append((adjust(np.r_[feature.p_value, nulls], "bh")[0], feature.effect_size))
    return np.array(rows)


def _aa(n: int, windows: int, **options: object) -> float:
    alarms = 0
    for w in range(windows):
        detector = DatasetDrift(**options).fit(table(n, seed=100_000 + w))  # type: ignore[arg-type]
        alarms += bool(detector.score(table(n, seed=200_000 + w)).drifted())
    return alarms / windows


def _aa_windows(n: int, seeds: int) -> int:
    """Enough windows that a 5 % rate is told from 7 % where windows are cheap (±1.4 points at 1k rows)."""
    return {1_000: 10, 10_000: 4}.get(n, 1) * max(100, seeds)


def _interval(rate: float, windows: int) -> str:
    """The rate with its 95 % Wilson interval."""
    z = 1.96
    centre = (rate + z * z / (2 * windows)) / (1 + z * z / windows)
    half = z * np.sqrt(rate * (1 - rate) / windows + z * z / (4 * windows * windows)) / (1 + z * z / windows)
    return f"{rate:.1%} ({max(0.0, centre - half):.1%}–{centre + half:.1%})"


def _evidently(seeds: int, cache: Path | None) -> dict | None:
    if cache is not None and cache.exists():
        found = json.loads(cache.read_text(encoding="utf-8"))
        if found.get("seeds") == seeds:
            console.print(f"Evidently: its verdicts do not depend on mloop's floors; reusing {cache}")
            return found
    if not Path(EVIDENTLY).exists():
        console.print(f"[yellow]No Evidently venv at {EVIDENTLY}: run `make bench` (it creates one) or set EVIDENTLY_PYTHON.[/yellow]")
        return None
    console.print("Evidently: one report per cell and size, columns = seeds …")
    out = subprocess.run([EVIDENTLY, str(HERE / "_drift_power_evidently.py"), str(seeds), ",".join(map(str, SIZES))],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    if out.returncode != 0:
        raise SystemExit("_drift_power_evidently.py failed (its error is above)")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    if cache is not None:
        cache.write_text(json.dumps({**found, "seeds": seeds}), encoding="utf-8")
    return found


def _rate(found: np.ndarray, floor: float) -> float:
    return float(np.mean((found[:, 0] < ALPHA) & (found[:, 1] >= floor)))


def _chosen(results: dict[tuple[str, int], np.ndarray], grid: tuple[float, ...], categorical: bool) -> tuple[float | None, list[tuple]]:
    """The largest floor of ``grid`` that keeps every target cell at ≥ MARGIN, and per floor: the lowest target
    detection (and where), and the detection of the sub-target shifts at 100k rows."""
    rows, chosen = [], None
    targets = [c for c in CELLS if c.label in TARGETS and c.categorical == categorical]
    trivial = [c for c in CELLS if c.categorical == categorical and c.label not in TARGETS and c.kind in ("mean", "scale", "category")]
    for floor in grid:
        lowest, where = min((_rate(results[(c.label, n)], floor), f"{c.label} at {n // 1000}k") for c in targets for n in SIZES[1:])
        ignored = {c.label: _rate(results[(c.label, SIZES[-1])], floor) for c in trivial}
        rows.append((floor, f"{lowest:.0%} ({where})", ignored))
        if lowest >= MARGIN:
            chosen = floor
    return chosen, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here (for docs/drift.md)")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--evidently-cache", type=Path, help="save Evidently's verdicts here, or reuse them (same --seeds)")
    args = parser.parse_args()
    started = time.perf_counter()
    evidently = None if args.no_evidently else _evidently(args.seeds, args.evidently_cache)
    evidently_s = time.perf_counter() - started
    results: dict[tuple[str, int], np.ndarray] = {}
    with console.status("mloop: measuring every cell …"):
        for cell in CELLS:
            for n in SIZES:
                results[(cell.label, n)] = _measure(cell, n, args.seeds)
        aa = {n: _aa(n, _aa_windows(n, args.seeds)) for n in SIZES}
        naive = {n: _aa(n, _aa_windows(n, args.seeds), correction="none", floors=dict.fromkeys(DEFAULT_FLOORS, 0.0)) for n in SIZES}
    floors = {c.label: DEFAULT_FLOORS["total_variation" if c.categorical else "wasserstein_sd"] for c in CELLS}

    t = Table(title=f"Detection rate over {args.seeds} seeds: mloop defaults (BH, α 0.05, W1/σ ≥ {DEFAULT_FLOORS['wasserstein_sd']}, "
                    f"TV ≥ {DEFAULT_FLOORS['total_variation']}) | Evidently 0.7 defaults")
    t.add_column("shift")
    for n in SIZES:
        t.add_column(f"{n // 1000}k rows", justify="right")
    markdown = ["| shift | " + " | ".join(f"{n // 1000}k: mloop | {n // 1000}k: Evidently" for n in SIZES) + " |",
                "|---|" + "---:|---:|" * len(SIZES)]
    misses = []
    for cell in CELLS:
        cells, md = [], []
        for n in SIZES:
            ours = _rate(results[(cell.label, n)], floors[cell.label])
            theirs = evidently["detection"][cell.label][str(n)] if evidently else None
            target = cell.label in TARGETS and n >= 10_000
            if target and ours < 0.9:
                misses.append(f"{cell.label} at {n:,}")
            mark = "*" if target else ""
            cells.append(f"{ours:.0%}{mark} | {theirs:.0%}" if theirs is not None else f"{ours:.0%}{mark}")
            md.append(f"{ours:.0%}{mark} | {theirs:.0%}" if theirs is not None else f"{ours:.0%}{mark} | —")
        t.add_row(cell.label + (" (target)" if cell.label in TARGETS else ""), *cells)
        markdown.append(f"| {cell.label} | " + " | ".join(md) + " |")
    aa_text = {n: _interval(aa[n], _aa_windows(n, args.seeds)) for n in SIZES}
    aa_row = [f"{aa_text[n]} | {evidently['aa'][str(n)]:.1%}" if evidently else aa_text[n] for n in SIZES]
    t.add_row("A/A: windows with any of 25 features flagged", *aa_row)
    t.add_row("A/A, naive (each test at p < 0.05, no floor)", *[f"{naive[n]:.1%}" for n in SIZES])
    markdown.append("| **A/A: windows with any of 25 features flagged** | " + " | ".join(
        f"{aa_text[n]} | {evidently['aa'][str(n)]:.1%}" if evidently else f"{aa_text[n]} | —" for n in SIZES) + " |")
    markdown.append("| A/A, naive (each test at p < 0.05, no floor) | " + " | ".join(f"{naive[n]:.1%} | —" for n in SIZES) + " |")
    console.print(t)
    console.print("* a target cell (≥ 90 % from 10k rows up)")

    for name, grid, categorical in (("wasserstein_sd", NUMERIC_GRID, False), ("total_variation", CATEGORY_GRID, True)):
        chosen, rows = _chosen(results, grid, categorical)
        sweep = Table(title=f"Floor sweep for {name}: lowest detection over the target cells (10k, 100k) and what the floor ignores at 100k")
        sweep.add_column("floor", justify="right")
        sweep.add_column("lowest target detection", justify="right")
        for label in rows[0][2]:
            sweep.add_column(f"{label} @100k", justify="right")
        for floor, lowest, ignored in rows:
            sweep.add_row(f"{floor:g}" + (" (chosen)" if floor == chosen else ""), lowest, *[f"{v:.0%}" for v in ignored.values()])
        console.print(sweep)
        verdict = "matches" if chosen == DEFAULT_FLOORS[name] else "DIFFERS FROM"
        console.print(f"{name}: the largest floor keeping every target cell ≥ {MARGIN:.0%} is {chosen}; {verdict} the default {DEFAULT_FLOORS[name]}")
    worst_aa = max(aa.values())
    console.print(f"A/A at the defaults: worst {worst_aa:.1%} (target ≤ 5 %); target cells under 90 %: {', '.join(misses) or 'none'}")
    console.print(f"({time.perf_counter() - started:.0f} s, Evidently's side {evidently_s:.0f} s; A/A windows per size: "
                  + ", ".join(f"{n // 1000}k: {_aa_windows(n, args.seeds)}" for n in SIZES) + ")")
    if args.markdown:
        args.markdown.write_text("\n".join(markdown) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
