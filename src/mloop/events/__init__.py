"""Events that tell every process of mloop that something changed (an alias moved, drift fired)."""

from __future__ import annotations

from mloop.events._bus import (
    DEPLOYMENT_CHANGED,
    DRIFT_DETECTED,
    DRIFT_RESOLVED,
    FEATURES_CHANGED,
    LOOP_FALLBACK,
    MODEL_ALIAS_CHANGED,
    ROLLOUT_DECIDED,
    Event,
    EventBus,
    SqlEventBus,
)

__all__ = [
    "DEPLOYMENT_CHANGED", "DRIFT_DETECTED", "DRIFT_RESOLVED", "FEATURES_CHANGED", "LOOP_FALLBACK", "MODEL_ALIAS_CHANGED", "ROLLOUT_DECIDED",
    "Event", "EventBus", "SqlEventBus",
]
