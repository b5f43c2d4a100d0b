"""mloop's side of the speed benchmark, in a fresh process like Evidently's (fair memory figures).

    python _drift_mloop.py REF.parquet CUR.parquet OUT.html   -> {"import_seconds", "read_seconds", "seconds", "peak_mib"}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rss import PeakRSS  # noqa: E402


def main() -> None:
    started = time.perf_counter()
    from mloop.data import read_columns
    from mloop.monitoring import drift_detector, render_drift_report, write_html
    from mloop.monitoring.drift import Coded

    imported = time.perf_counter() - started  # pyarrow loads on the first read: it counts as reading
    ref, cur = read_columns(sys.argv[1]), read_columns(sys.argv[2])
    read = time.perf_counter() - started - imported
    head = {name: Coded(c.codes[:200], c.labels) if isinstance(c, Coded) else c[:200] for name, c in ref.items()}
    fitted = drift_detector(head, head)  # first-call set-up (the HTML template) is not what we time
    render_drift_report(head, head, fitted.score(head), fitted=fitted)
    with PeakRSS() as mem:
        start = time.perf_counter()
        fitted = drift_detector(ref, cur)
        report = fitted.score(cur)
        write_html(Path(sys.argv[3]), render_drift_report(ref, cur, report, fitted=fitted))
        seconds = time.perf_counter() - start
    print(json.dumps({"import_seconds": imported, "read_seconds": read, "seconds": seconds, "peak_mib": mem.peak_mib}))


if __name__ == "__main__":
    main()
