"""The bundled walk round the whole loop: ``mloop demo``."""

from __future__ import annotations

from mloop.demo._loop import run_demo
from mloop.demo._records import DemoAction, DemoConfig, DemoResult, WindowResult, summary_rows

__all__ = ["DemoAction", "DemoConfig", "DemoResult", "WindowResult", "run_demo", "summary_rows"]
