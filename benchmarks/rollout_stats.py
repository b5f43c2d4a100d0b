"""The canary's judge, measured: always-valid sequential tests (mloop.rollout) beside the naive judge that repeats a
fixed-sample test at every look, on the same simulated streams.

1. A/A: baseline and candidate identical (5 % errors); the decision is checked after every labelled outcome, for
   ≥ 1,000 runs of 10,000 requests at a 5 % and a 25 % candidate share. Target: false rollbacks ≤ 5 %.
2. Power: errors 5 % → 7 % at a 50/50 split: rollback rate and median requests to the decision, beside a
   fixed-horizon test of the same α sized for 80 % and for the sequential test's power (its sample size from the
   normal approximation, its power checked by simulation), and how often the sequential test decided within it.
3. Several metrics at once (errors, log latency, label loss), A/A: each test at α/3 (Bonferroni), so the share of
   runs with any false rollback stays ≤ 5 %.
4. Bandits: cumulative regret of Thompson sampling, UCB1 and ε-greedy (mloop.rollout.BanditPolicy, exploration floor
   2 %) against the oracle and beside a uniform split, 3 arms, rewards arriving 1,000 requests late.
5. Routing: each arm's observed share over 200,000 keys inside its 99.9 % binomial interval, and every key sent
   twice landing on the same arm.

    python benchmarks/rollout_stats.py [--runs 1000] [--requests 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.special import ndtr, ndtri

from mloop.rollout._sequential import stream_log_ratios

console = Console()
ALPHA = 0.05
TAU = {"errors": 0.02, "latency": 0.1, "loss": 0.05}
MIN_SAMPLES = 100


def _naive(cand: np.ndarray, values: np.ndarray, alpha: float, kind: str = "rate") -> np.ndarray:
    """Whether a one-sided fixed-sample z-test says "worse" after each observation (both arms ≥ MIN_SAMPLES)."""
    n_c = np.cumsum(cand)
    n_b = np.arange(1, len(values) + 1) - n_c
    s_c, s_b = np.cumsum(np.where(cand, values, 0.0)), np.cumsum(np.where(cand, 0.0, values))
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "rate":
            pooled = (s_b + s_c) / (n_b + n_c)
            v = pooled * (1 - pooled) * (1 / n_b + 1 / n_c)
        else:
            q_c, q_b = np.cumsum(np.where(cand, values**2, 0.0)), np.cumsum(np.where(cand, 0.0, values**2))
            v = np.maximum(q_c - s_c**2 / n_c, 0) / (n_c - 1) / n_c + np.maximum(q_b - s_b**2 / n_b, 0) / (n_b - 1) / n_b
        z = (s_c / n_c - s_b / n_b) / np.sqrt(v)
    return (n_c >= MIN_SAMPLES) & (n_b >= MIN_SAMPLES) & (v > 0) & (1 - ndtr(z) < alpha)


def _first(hits: np.ndarray) -> int | None:
    found = np.flatnonzero(hits)
    return int(found[0]) + 1 if found.size else None


def aa(runs: int, requests: int, rng: np.random.Generator) -> None:
    t = Table(title=f"1. A/A: identical arms (5 % errors), {runs:,} runs × {requests:,} requests, checked after every outcome")
    for col in ("candidate share", "mloop (mixture SPRT): false rollbacks", "naive repeated z-test: false rollbacks"):
        t.add_column(col, justify="right")
    for share in (0.05, 0.25):
        ours = naive = 0
        for _ in range(runs):
            cand = rng.random(requests) < share
            errors = (rng.random(requests) < 0.05).astype(float)
            ours += bool((stream_log_ratios(cand, errors, tau=TAU["errors"], min_samples=MIN_SAMPLES) >= math.log(1 / ALPHA)).any())
            naive += bool(_naive(cand, errors, ALPHA).any())
        t.add_row(f"{share:.0%}", f"{ours / runs:.1%}", f"{naive / runs:.1%}")
    console.print(t)
    console.print("target: mloop ≤ 5 %")


def power(runs: int, rng: np.random.Generator, p0: float = 0.05, p1: float = 0.07, horizon: int = 40_000) -> None:
    hits, when = 0, []
    for _ in range(runs):
        cand = rng.random(horizon) < 0.5
        errors = (rng.random(horizon) < np.where(cand, p1, p0)).astype(float)
        first = _first(stream_log_ratios(cand, errors, tau=TAU["errors"], min_samples=MIN_SAMPLES) >= math.log(1 / ALPHA))
        if first is not None:
            hits += 1
            when.append(first)
    achieved = hits / runs
    t = Table(title=f"2. Power: errors {p0:.0%} → {p1:.0%}, 50/50 split, {runs:,} runs (sequential: up to {horizon:,} requests)")
    for col in ("judge", "rolls back", "requests to the decision"):
        t.add_column(col, justify="right")
    t.add_row(f"mloop (mixture SPRT, τ = {TAU['errors']})", f"{achieved:.1%}", f"median {np.median(when):,.0f} (p90 {np.percentile(when, 90):,.0f})")
    for target in (0.8, min(achieved, 0.999)):
        fixed_n = _fixed_size(p0, p1, target)
        fixed_power = _fixed_power(p0, p1, fixed_n, runs, rng)
        within = sum(w <= fixed_n for w in when) / runs
        t.add_row(f"fixed horizon, same α, sized for {target:.1%} power", f"{fixed_power:.1%}", f"always {fixed_n:,}")
        t.add_row(f"  mloop within those {fixed_n:,} requests", f"{within:.1%}", "")
    console.print(t)


def _fixed_size(p0: float, p1: float, power_: float) -> int:
    """Requests (both arms, 50/50) for a one-sided two-proportion z-test of level ALPHA to reach ``power_``."""
    z_a, z_b = ndtri(1 - ALPHA), ndtri(power_)
    pooled = (p0 + p1) / 2
    per_arm = (z_a * math.sqrt(2 * pooled * (1 - pooled)) + z_b * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) ** 2 / (p1 - p0) ** 2
    return 2 * math.ceil(per_arm)


def _fixed_power(p0: float, p1: float, n: int, runs: int, rng: np.random.Generator) -> float:
    hits = 0
    for _ in range(runs):
        base, canary = rng.random(n // 2) < p0, rng.random(n // 2) < p1
        pooled = (base.sum() + canary.sum()) / n
        z = (canary.mean() - base.mean()) / math.sqrt(pooled * (1 - pooled) * 4 / n)
        hits += (1 - ndtr(z)) < ALPHA
    return hits / runs


def metrics(runs: int, requests: int, rng: np.random.Generator) -> None:
    alpha = ALPHA / 3
    ours = naive = 0
    for _ in range(runs):
        cand = rng.random(requests) < 0.25
        streams = {
            "errors": ((rng.random(requests) < 0.05).astype(float), "rate"),
            "latency": (rng.normal(math.log(0.01), 0.5, requests), "mean"),  # log seconds
            "loss": (rng.beta(2, 8, requests), "mean"),  # e.g. Brier
        }
        any_ours = any_naive = False
        for name, (values, kind) in streams.items():
            ratios = stream_log_ratios(cand, values, tau=TAU[name], min_samples=MIN_SAMPLES, kind=kind)
            any_ours |= bool((ratios >= math.log(1 / alpha)).any())
            any_naive |= bool(_naive(cand, values, ALPHA, kind).any())
        ours += any_ours
        naive += any_naive
    t = Table(title=f"3. Three metrics at once (errors, log latency, loss), A/A, {runs:,} runs × {requests:,} requests, 25 % candidate")
    for col in ("judge", "runs with any false rollback"):
        t.add_column(col, justify="right")
    t.add_row("mloop (mixture SPRT, α/3 each)", f"{ours / runs:.1%}")
    t.add_row("naive repeated z-test (α each)", f"{naive / runs:.1%}")
    console.print(t)
    console.print("target: mloop ≤ 5 %")


def bandits(runs: int, rng: np.random.Generator, horizon: int = 30_000, delay: int = 1_000, every: int = 500) -> None:
    from mloop.rollout import BanditPolicy, BanditSpec

    rates = np.array([0.05, 0.06, 0.08])
    best = rates.max()
    t = Table(title=f"4. Bandits: regret over {horizon:,} requests (rewards {delay:,} requests late, reweighted every {every}), "
                    f"3 arms {', '.join(f'{r:.0%}' for r in rates)}, {runs} runs")
    for col in ("policy", "regret (mean)", "vs uniform split", "share on the best arm, last 5,000"):
        t.add_column(col, justify="right")
    uniform_regret = horizon * (best - rates.mean())
    for algorithm in ("thompson", "ucb1", "epsilon_greedy"):
        regrets, late_share = [], []
        for _ in range(runs):
            policy = BanditPolicy(BanditSpec(arms=["a", "b", "c"], algorithm=algorithm, floor=0.02))
            pending: list[tuple[int, np.ndarray, np.ndarray]] = []
            regret = 0.0
            on_best = 0
            for start in range(0, horizon, every):
                weights = np.array(list(policy.weights().values()))
                arms = rng.choice(3, size=every, p=weights / weights.sum())
                rewards = rng.random(every) < rates[arms]
                regret += float((best - rates[arms]).sum())
                if start >= horizon - 5_000:
                    on_best += int((arms == 2).sum())
                pending.append((start + every + delay, arms, rewards))
                due = [p for p in pending if p[0] <= start + every]
                pending = [p for p in pending if p[0] > start + every]
                for _, done_arms, done_rewards in due:
                    for k, name in enumerate(("a", "b", "c")):
                        mask = done_arms == k
                        hits = int(done_rewards[mask].sum())
                        if hits:
                            policy.observe(name, "reward", 1.0, hits)
                        if int(mask.sum()) - hits:
                            policy.observe(name, "reward", 0.0, int(mask.sum()) - hits)
                policy.apply(policy.decide(now=float(start)), now=float(start))
            regrets.append(regret)
            late_share.append(on_best / 5_000)
        t.add_row(algorithm, f"{np.mean(regrets):.0f}", f"{np.mean(regrets) / uniform_regret:.0%}", f"{np.mean(late_share):.0%}")
    t.add_row("uniform split", f"{uniform_regret:.0f}", "100%", "33%")
    t.add_row("oracle", "0", "0%", "100%")
    console.print(t)


def routing(keys: int = 200_000) -> None:
    from mloop.rollout import BanditPolicy, BanditSpec, CanaryPolicy, CanarySpec

    canary = CanaryPolicy(CanarySpec(baseline="1", candidate="2"))
    bandit = BanditPolicy(BanditSpec(arms=["a", "b", "c"]))
    bandit.applied = {"a": 0.2, "b": 0.3, "c": 0.5}
    t = Table(title=f"5. Routing: observed shares over {keys:,} keys, 99.9 % binomial intervals")
    for col in ("policy", "arm", "weight", "observed", "inside the interval", "same arm on a second look"):
        t.add_column(col, justify="right")
    z = ndtri(1 - 0.001 / 2)
    for name, policy in (("canary at 1 %", canary), ("bandit", bandit)):
        names = [f"req-{name}-{i}" for i in range(keys)]
        first = [policy.route(k)[0] for k in names]
        sticky = all(policy.route(k)[0] == a for k, a in zip(names[:20_000], first, strict=False))
        for arm, weight in policy.weights().items():
            observed = sum(a == arm for a in first) / keys
            half = z * math.sqrt(weight * (1 - weight) / keys)
            t.add_row(name, arm, f"{weight:.3f}", f"{observed:.4f}", "yes" if abs(observed - weight) <= half else "NO", "yes" if sticky else "NO")
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    aa(args.runs, args.requests, rng)
    power(args.runs, rng)
    metrics(args.runs, args.requests, rng)
    bandits(max(20, args.runs // 20), rng)
    routing()
    console.print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
