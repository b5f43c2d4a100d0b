"""mloop's side of the speed benchmark, in a fresh process like Evidently's (fair memory figures).

    python _drift_mloop.py REF.parquet CUR.parquet OUT.html   -> {"seconds", "peak_mib"}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import PeakRSS  # noqa: E402
from mloop.monitoring import drift_detector, render_drift_report, write_html  # noqa: E402


def main() -> None:
    ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
    fitted = drift_detector(ref.head(200), cur.head(200))  # imports and first-call set-up are not what we time
    render_drift_report(ref.head(200), cur.head(200), fitted.score(cur.head(200)), fitted=fitted)
    with PeakRSS() as mem:
        start = time.perf_counter()
        fitted = drift_detector(ref, cur)
        report = fitted.score(cur)
        write_html(Path(sys.argv[3]), render_drift_report(ref, cur, report, fitted=fitted))
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mib": mem.peak_mib}))


if __name__ == "__main__":
    main()
