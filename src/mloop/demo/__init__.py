"""The bundled walk round the whole loop: ``mloop demo``. Names load lazily: a pipeline that reads the demo's flights
table (``mloop.demo._flights``) does not import the whole loop with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

if TYPE_CHECKING:
    from mloop.demo._loop import run_demo
    from mloop.demo._records import DemoAction, DemoConfig, DemoResult, WindowResult, summary_rows

_WHERE: dict[str, str] = {"run_demo": "_loop", **{n: "_records" for n in ("DemoAction", "DemoConfig", "DemoResult", "WindowResult", "summary_rows")}}

__all__ = ["DemoAction", "DemoConfig", "DemoResult", "WindowResult", "run_demo", "summary_rows"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
