"""Whole processes, timed as a user waits for them: wall time from start to exit and the peak resident memory of
that one process (``os.wait4``), imports and start-up included. Stdlib only, so every venv can use it."""

from __future__ import annotations

import os
import statistics
import subprocess
import time


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak MiB) of one run of ``cmd``; raises with its stderr if it fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def median_timed(cmd: list[str], runs: int = 5, env: dict[str, str] | None = None) -> tuple[float, float]:
    """The median wall time and the largest peak memory over ``runs`` runs."""
    results = [run_timed(cmd, env) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)
