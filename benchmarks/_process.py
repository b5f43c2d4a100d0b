"""Whole processes, timed as a user waits for them: wall time from start to exit and the peak resident memory of
that one process, imports and start-up included. Stdlib only, so every venv can use it.

A child's ``ru_maxrss`` counts the pages it shared with its parent before ``exec``: spawned straight from a
benchmark that holds 200 MiB of tables, even ``/bin/true`` reports 200 MiB. So each command is started by a
small launcher process (a bare interpreter), and the launcher reports the command's own figures."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_LAUNCHER = """
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
devnull = os.open(os.devnull, os.O_WRONLY)
started = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(out, "w") as fh:
    json.dump([seconds, os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024], fh)
"""


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak MiB) of one run of ``cmd`` (its stdout discarded); raises with its stderr if it fails."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, result.name, *cmd], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the launcher failed: {done.stderr.decode()[-2000:]}")
        seconds, code, peak_mib = json.loads(Path(result.name).read_text())
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {done.stderr.decode()[-2000:]}")
    return seconds, peak_mib


def median_timed(cmd: list[str], runs: int = 5, env: dict[str, str] | None = None) -> tuple[float, float]:
    """The median wall time and the largest peak memory over ``runs`` runs."""
    results = [run_timed(cmd, env) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)
