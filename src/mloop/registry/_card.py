"""Model cards: Markdown written from the run's real metadata (data, feature views, features, params, metrics,
lineage)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    if not rows:
        return ["_none recorded_", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _feature_views(features: dict[str, Any]) -> list[str]:
    """The feature store's views (name, version, features) the model's training data was joined from."""
    services = ", ".join(f"`{s['name']}` v{s['version']}" for s in features.get("services", []))
    lines = ["## Feature views", "", "Trained on the feature store's point-in-time join"
             + (f" of feature service {services}." if services else "."), ""]
    rows = [(str(v["name"]), f"v{v['version']}", ", ".join(v.get("features", []))) for v in features.get("views", [])]
    return lines + _table(rows, ("view", "version", "features"))


def render_card(
    *,
    name: str,
    version: int,
    run_id: str,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str],
    inputs: list[dict[str, Any]],
    manifest: dict[str, str],
    manifest_sha256: str,
    created: float,
    twin: dict[str, Any] | None = None,
    features: dict[str, Any] | None = None,
) -> str:
    """The card of ``name`` version ``version`` as Markdown; ``features`` is the run's feature lineage
    (``{"views": [{"name", "version", "features"}], "services": [{"name", "version"}]}``), listed when it has views."""
    when = dt.datetime.fromtimestamp(created, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"# Model card: {name} v{version}", "", f"Registered {when} from run `{run_id}`.", ""]

    lines += ["## Data", ""]
    contexts = sorted({k.split(".")[2] for k in tags if k.startswith("mloop.dataset.")})
    data_rows = [
        (
            c,
            f"{tags.get(f'mloop.dataset.{c}.name', '?')} — {tags.get(f'mloop.dataset.{c}.rows', '?')} rows, "
            f"sha256 `{tags.get(f'mloop.dataset.{c}.sha256', '?')[:16]}…`",
        )
        for c in contexts
    ]
    lines += _table(data_rows, ("context", "dataset"))

    if features and features.get("views"):
        lines += _feature_views(features)

    lines += ["## Features", ""]
    lines += _table([(str(i["name"]), str(i["type"])) for i in inputs], ("feature", "type"))

    lines += ["## Parameters", ""]
    lines += _table(sorted(params.items()), ("parameter", "value"))

    lines += ["## Metrics", ""]
    lines += _table([(k, f"{v:.4f}") for k, v in sorted(metrics.items())], ("metric", "value"))

    lines += ["## Lineage", ""]
    lineage_rows = [
        ("git commit", tags.get("mloop.code.commit") or "not in a git repository"),
        ("uncommitted changes", tags.get("mloop.code.dirty_sha256") or "none"),
        ("seed", tags.get("mloop.seed", "not set")),
        ("python", tags.get("mloop.env.python", "?")),
    ]
    lineage_rows += sorted((k.removeprefix("mloop.env."), v) for k, v in tags.items() if k.startswith("mloop.env.") and k != "mloop.env.python")
    lines += _table(lineage_rows, ("what", "value"))

    lines += ["## Serving runtime", ""]
    if twin and twin.get("onnx"):
        lines += [f"ONNX twin `mloop/model.onnx` served through ONNX Runtime, native model as fallback; parity: {twin['parity']}.", ""]
    else:
        lines += [f"Served natively (no ONNX twin: {(twin or {}).get('reason', 'not built')}).", ""]

    lines += ["## Integrity", ""]
    lines += [f"Manifest SHA-256 `{manifest_sha256}` over {len(manifest)} files; loading verifies every file first.", ""]
    lines += _table([(f"`{k}`", f"`{v[:16]}…`") for k, v in sorted(manifest.items())], ("file", "sha256"))
    return "\n".join(lines)
