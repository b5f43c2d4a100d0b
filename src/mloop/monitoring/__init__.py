"""Monitoring: the prediction and feedback log, and drift (see ``mloop.monitoring.drift``)."""

from __future__ import annotations

from mloop.monitoring._drift_report import compare as compare_tables
from mloop.monitoring._drift_report import detector as drift_detector
from mloop.monitoring._drift_report import render as render_drift_report
from mloop.monitoring._drift_report import summary as drift_summary
from mloop.monitoring._drift_report import write_html
from mloop.monitoring._log import INPUT_PREFIX, LogReader, PredictionLog
from mloop.monitoring._monitor_config import MonitorConfig, load_monitors, parse_monitor, register_monitor
from mloop.monitoring._monitors import LEASE, MonitorMetrics, MonitorRunner, MonitorScheduler, WindowResult
from mloop.monitoring._transport import LocalSegments, LogCollector, NatsJetStreamSink, RedisStreamSink, SegmentSink, collector_for, sink_for
from mloop.monitoring._webhooks import check_webhook, deliver

__all__ = [
    "LogCollector",
    "collector_for",
    "LocalSegments",
    "NatsJetStreamSink",
    "RedisStreamSink",
    "SegmentSink",
    "sink_for",
    "LEASE",
    "MonitorConfig",
    "MonitorMetrics",
    "MonitorRunner",
    "MonitorScheduler",
    "WindowResult",
    "check_webhook",
    "deliver",
    "load_monitors",
    "parse_monitor",
    "register_monitor",
   "INPUT_PREFIX", "LogReader", "PredictionLog", "compare_tables", "drift_detector", "drift_summary", "render_drift_report", "write_html"]
