"""The bundled walk round the whole loop: ``mloop demo``. Names load lazily: a pipeline that reads the demo's flights
table (``mloop.demo._flights``) does not import the whole loop with it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.demo._loop import run_demo
    from mloop.demo._records import DemoAction, DemoConfig, DemoResult, WindowResult, summary_rows

_WHERE: dict[str, str] = {"run_demo": "_loop", **{n: "_records" for n in ("DemoAction", "DemoConfig", "DemoResult", "WindowResult", "summary_rows")}}

__all__ = ["DemoAction", "DemoConfig", "DemoResult", "WindowResult", "run_demo", "summary_rows"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mloop.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mloop.demo.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
