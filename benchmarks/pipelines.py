"""Pipelines (issue 13): what a rerun costs. The flights example (``examples/flights``, copied to a scratch folder)
run as whole processes — ``mloop run`` cold in a fresh workspace, again with nothing changed, and after editing a
helper one step calls — with which steps ran each time; beside them, the runner's own time for the cached rerun
in-process (labelled). Target: the rerun ≤ 5 % of the cold run.

    python benchmarks/pipelines.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=150)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flights"
MLOOP = Path(sys.executable).with_name("mloop")


def _run(folder: Path, *extra: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([str(MLOOP), "--workspace", str(folder / "ws"), "run", str(folder / "pipeline.yaml"), *extra],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mloop run failed:\n{done.stdout}\n{done.stderr}")
    ran = re.findall(r"^\s+(\S+)\s+ran", done.stdout, flags=re.M)
    return took, ", ".join(ran) or "none"


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="mloop-bench-pipelines-"))
    for name in ("pipeline.yaml", "steps.py"):
        shutil.copy(EXAMPLE / name, folder / name)
    subprocess.run([str(MLOOP), "init", str(folder / "ws")], capture_output=True, check=True)
    rows = []
    cold, ran = _run(folder)
    rows.append(("cold (fresh workspace)", cold, ran))
    again, ran = _run(folder)
    rows.append(("rerun, nothing changed", again, ran))
    steps = folder / "steps.py"
    steps.write_text(steps.read_text().replace('return frame[frame["month"] <= months]', 'return frame[frame["month"].le(months)]'))
    edited, ran = _run(folder)
    rows.append(("after editing first_months in steps.py (same rows out)", edited, ran))

    from mloop.pipelines import Pipeline, Runner
    from mloop.workspace import Workspace

    ws = Workspace.open(folder / "ws")
    pipeline = Pipeline.load(folder / "pipeline.yaml")
    Runner(ws).run(pipeline)
    started = time.perf_counter()
    Runner(ws).run(pipeline)
    warm = time.perf_counter() - started

    t = Table(title="mloop run examples/flights/pipeline.yaml, whole processes (seconds)")
    for col in ("run", "seconds", "vs cold", "steps that ran"):
        t.add_column(col)
    for name, seconds, which in rows:
        t.add_row(name, f"{seconds:.2f}", f"{seconds / cold:.1%}", which)
    t.add_row("rerun, nothing changed: the runner alone, in-process and warm", f"{warm:.3f}", f"{warm / cold:.1%}", "none")
    console.print(t)
    met = again <= 0.05 * cold
    console.print(f"target (rerun ≤ 5 % of the cold run, whole process): {'met' if met else 'NOT met'} — {again:.2f} s against {cold:.2f} s; "
                  f"the runner's own share is {warm:.3f} s, the rest starting Python and mloop's command line (no step's code is imported)")


if __name__ == "__main__":
    main()
