"""How much of an agent's context the MCP server costs: the size of its tool list, and of each tool's largest result
on the demo workspace (every listing at its MCP cap, the model card and per-feature statistics asked for).

Sizes are the JSON the client receives (the whole ``CallToolResult``: the text content and the structured content),
in bytes and in tokens estimated as bytes / 4 (no tokenizer's vocabulary can be downloaded here; for JSON this rule
is within about 20 % of the GPT and Claude tokenizers). The issue's limits: about 25k tokens before a client cuts a
result; a result should stay a few thousand.

    python benchmarks/mcp_tokens.py [--workspace DIR]   # without --workspace: runs `mloop demo` first (about 4 min)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

console = Console()


def _largest_arguments(ws: Any) -> dict[str, dict[str, Any]]:
    """For each tool, the arguments that make its result largest on ``ws`` within the tool's caps."""
    from mloop.mcp import TOOLS

    deployments = ws.store.deployments.list()
    dep = deployments[0].name if deployments else "flights"
    model = deployments[0].model_name if deployments else "flights"
    monitors = ws.store.monitors.list()
    monitor = monitors[0] if monitors else None
    caps = {t.name: {k: min([maximum] + [m for f, (c, m) in t.tighter.items() if c == k]) for k, (_, maximum) in t.caps.items()}
            for t in TOOLS}
    return {
        "whoami": {}, "list_models": {}, "list_deployments": {}, "list_monitors": {}, "list_features": {},
        "show_model": {"name": model, "card": True},
        "list_runs": caps["list_runs"],
        "rollout_status": {"name": dep, **caps["rollout_status"]},
        "drift_windows": {"deployment": monitor.deployment, "name": monitor.name, "features": True, **caps["drift_windows"]} if monitor else {},
        "loop_history": caps["loop_history"],
        "deploy": {"name": dep, "model": model, "version": 1, "dry_run": True},
        "change_rollout": {"name": dep, "action": "rollback", "dry_run": True},
        "apply_monitor": {"config": monitor.config, "dry_run": True} if monitor else {},
        "retrain": {"name": dep, "dry_run": True},
        "predict": {"name": dep, "rows": _rows(ws, model, 20), "explain": True},
    }


def _rows(ws: Any, model: str, n: int) -> list[dict[str, Any]]:
    """``n`` rows the model was trained on (its background sample), as the agent would send them."""
    loaded = ws.registry.load(model, "champion")
    frame = loaded.background.head(n) if loaded.background is not None else None
    return [] if frame is None else [{k: (None if v != v else v) for k, v in r.items()} for r in frame.to_dict("records")]


async def _measure(ws: Any) -> tuple[int, list[tuple[str, int, int, bool]]]:
    from mcp import Client

    from mloop.mcp import build_server
    from mloop.operations import Caller

    rows = []
    async with Client(build_server(ws, lambda _ctx: Caller("bench", "admin"))) as client:
        listed = await client.list_tools()
        tools_bytes = len(listed.model_dump_json(by_alias=True, exclude_none=True))
        for name, arguments in _largest_arguments(ws).items():
            result = await client.call_tool(name, arguments)
            whole = len(result.model_dump_json(by_alias=True, exclude_none=True))
            text = sum(len(c.text) for c in result.content if hasattr(c, "text"))
            rows.append((name, whole, text, bool(result.is_error)))
    return tools_bytes, rows


def main() -> None:
    from mloop.mcp import TOOLS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="a workspace to measure (default: a fresh `mloop demo`)")
    args = parser.parse_args()
    from mloop.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="mloop-mcp-bench-") as tmp:
        root = args.workspace
        if root is None:
            root = Path(tmp) / "ws"
            with console.status("running `mloop demo` for a workspace with history …"):
                subprocess.run([str(Path(sys.executable).parent / "mloop"), "-w", str(root), "demo"], check=True, capture_output=True)
        tools_bytes, rows = anyio.run(_measure, Workspace.open(root))
    table = Table(title="MCP: what each answer costs an agent (bytes; tokens ≈ bytes / 4)")
    for col in ("answer", "bytes", "≈ tokens", "of which text", "note"):
        table.add_column(col, justify="left" if col in ("answer", "note") else "right")
    table.add_row(f"tools/list ({len(TOOLS)} tools)", f"{tools_bytes:,}", f"{tools_bytes // 4:,}", "", "sent once per session")
    for name, whole, text, error in sorted(rows, key=lambda r: -r[1]):
        table.add_row(name, f"{whole:,}", f"{whole // 4:,}", f"{text:,}", "tool error" if error else "")
    console.print(table)
    largest = max(rows, key=lambda r: r[1])
    console.print(f"largest result: {largest[0]} ≈ {largest[1] // 4:,} tokens (limit before a client cuts: ≈ 25,000)")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "mcp_tokens.json").write_text(json.dumps({"tools_list_bytes": tools_bytes, "results": {n: {"bytes": w, "text_bytes": t, "error": e}
                                                                                                   for n, w, t, e in rows}}, indent=2))


if __name__ == "__main__":
    main()
