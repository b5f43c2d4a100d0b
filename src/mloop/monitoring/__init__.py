"""Monitoring: the prediction and feedback log, monitors and their scheduler, drift reports, and the drift
statistics (``mloop.monitoring.drift``). Names load lazily, so a command imports only the part it uses."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.monitoring._drift_report import compare as compare_tables
    from mloop.monitoring._drift_report import detector as drift_detector
    from mloop.monitoring._drift_report import render as render_drift_report
    from mloop.monitoring._drift_report import summary as drift_summary
    from mloop.monitoring._drift_report import write_html
    from mloop.monitoring._log import INPUT_PREFIX, LogReader, PredictionLog
    from mloop.monitoring._monitor_config import MonitorConfig, load_monitors, parse_monitor, register_monitor
    from mloop.monitoring._monitors import LEASE, MonitorMetrics, MonitorRunner, MonitorScheduler, WindowResult
    from mloop.monitoring._transport import (
        LocalSegments,
        LogCollector,
        NatsJetStreamSink,
        RedisStreamSink,
        SegmentSink,
        collector_for,
        sink_for,
    )
    from mloop.monitoring._webhooks import check_webhook, deliver

_WHERE: dict[str, tuple[str, str]] = {
    "compare_tables": ("_drift_report", "compare"),
    "drift_detector": ("_drift_report", "detector"),
    "render_drift_report": ("_drift_report", "render"),
    "drift_summary": ("_drift_report", "summary"),
    "write_html": ("_drift_report", "write_html"),
    **{n: ("_log", n) for n in ("INPUT_PREFIX", "LogReader", "PredictionLog")},
    **{n: ("_monitor_config", n) for n in ("MonitorConfig", "load_monitors", "parse_monitor", "register_monitor")},
    **{n: ("_monitors", n) for n in ("LEASE", "MonitorMetrics", "MonitorRunner", "MonitorScheduler", "WindowResult")},
    **{n: ("_transport", n) for n in ("LocalSegments", "LogCollector", "NatsJetStreamSink", "RedisStreamSink", "SegmentSink", "collector_for", "sink_for")},
    **{n: ("_webhooks", n) for n in ("check_webhook", "deliver")},
}

__all__ = [
    "INPUT_PREFIX",
    "LEASE",
    "LocalSegments",
    "LogCollector",
    "LogReader",
    "MonitorConfig",
    "MonitorMetrics",
    "MonitorRunner",
    "MonitorScheduler",
    "NatsJetStreamSink",
    "PredictionLog",
    "RedisStreamSink",
    "SegmentSink",
    "WindowResult",
    "check_webhook",
    "collector_for",
    "compare_tables",
    "deliver",
    "drift_detector",
    "drift_summary",
    "load_monitors",
    "parse_monitor",
    "register_monitor",
    "render_drift_report",
    "sink_for",
    "write_html",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module, attribute = _WHERE[name]
        return getattr(importlib.import_module(f"mloop.monitoring.{module}"), attribute)
    raise AttributeError(f"module 'mloop.monitoring' has no attribute {name!r}")
