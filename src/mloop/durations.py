"""Durations as people write them in YAML and on the command line (``90s``, ``30m``, ``24h``, ``7d``, ``1w``, or a number
of seconds): a feature view's TTL, a freshness bound."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any, what: str = "a duration") -> dt.timedelta:
    """``24h``, ``30m``, ``7d``, ``1w``, ``90s`` or a number of seconds; positive. ``ValueError`` otherwise (pydantic
    validators report it with the field).

    >>> parse_duration("24h"), parse_duration(90)
    (datetime.timedelta(days=1), datetime.timedelta(seconds=90))
    """
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write a number and a unit (90s, 30m, 24h, 7d, 1w) or seconds")
    if seconds <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest of ``7d``, ``24h``, ``30m``, ``90s`` that says ``value`` exactly (what :func:`parse_duration` reads).

    >>> format_duration(dt.timedelta(hours=24)), format_duration(dt.timedelta(seconds=90))
    ('1d', '90s')
    """
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"
