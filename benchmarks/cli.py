"""The commands a user runs, timed as whole processes (imports, start-up and all), beside the peers the targets
name: `python -c "import mlflow"` and MLflow's own CLI on the same store; and the demo's full year.

Targets: a command that reads MLflow's store takes at most 0.5 s more than `import mlflow` alone; the others under
1 s; the full demo year under 120 s on two cores.

    python benchmarks/cli.py [--sample 1.0] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _process import median_timed, run_timed  # noqa: E402

console = Console()
BIN = Path(sys.executable).parent
MLOOP = [str(BIN / "mloop")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=float, default=1.0, help="share of the flights the demo replays (1 = the full year)")
    parser.add_argument("--runs", type=int, default=5, help="runs per command (the median is shown)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="mloop-cli-bench-") as tmp:
        ws = str(Path(tmp) / "ws")
        demo_s, demo_mib = run_timed([*MLOOP, "-w", ws, "demo", "--sample", str(args.sample)], env)
        console.log(f"demo done in {demo_s:.1f} s")
        mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{ws}/mlflow.db"}
        import_mlflow = median_timed([sys.executable, "-c", "import mlflow"], args.runs, env)[0]
        experiment = "1"  # the demo's experiment: the first one it creates
        rows: list[tuple[str, float, str, float | None]] = []
        for command, touches_mlflow, peer in (
            (["models", "list"], True, None),
            (["runs", "list"], True, [str(BIN / "mlflow"), "runs", "list", "--experiment-id", experiment]),
            (["models", "show", "flights", "--version", "champion"], True, None),
            (["deployments", "list"], False, None),
            (["auth", "list-keys"], False, None),
            (["monitors", "list"], False, None),
        ):
            ours = median_timed([*MLOOP, "-w", ws, *command], args.runs, env)[0]
            theirs = median_timed(peer, args.runs, mlflow_env)[0] if peer else None
            budget = import_mlflow + 0.5 if touches_mlflow else 1.0
            rows.append((" ".join(command), ours, f"≤ {budget:.2f} s" + (" (import mlflow + 0.5)" if touches_mlflow else ""), theirs))
    table = Table(title=f"whole processes, median of {args.runs} (python -c 'import mlflow': {import_mlflow:.2f} s)")
    for col in ("mloop command", "seconds", "target", "met", "MLflow CLI, same store"):
        table.add_column(col)
    for name, seconds, target, theirs in rows:
        limit = float(target.split()[1])
        table.add_row(name, f"{seconds:.2f}", target, "yes" if seconds <= limit else "no", f"{theirs:.2f}" if theirs else "")
    console.print(table)
    verdict = ("met" if demo_s < 120 else "missed") if args.sample >= 1 else "not measured (a slice; --sample 1 is the full year)"
    console.print(f"demo (sample {args.sample:g}): {demo_s:.1f} s wall, {demo_mib:.0f} MiB peak; target under 120 s for the full year: {verdict}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "cli.json").write_text(json.dumps({"import_mlflow_s": import_mlflow, "demo_s": demo_s, "commands": rows}, indent=2))


if __name__ == "__main__":
    main()
