"""Rollout: traffic policies and their statistics — pure logic, no I/O."""

from __future__ import annotations

from mloop.rollout._canary import Canary, Decision
from mloop.rollout._routing import Arm, bucket, route

__all__ = ["Arm", "Canary", "Decision", "bucket", "route"]
