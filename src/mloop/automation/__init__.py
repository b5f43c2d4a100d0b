"""Automation: background decisions taken in one leased process — the rollout driver (canaries advance, promote
and roll back; bandits re-weight), and the server that runs them beside its routes."""

from __future__ import annotations

from mloop.automation._rollout_driver import LEASE, DriverStep, RolloutDriver, RolloutMetrics
from mloop.automation._server import BACKGROUND, app_from_env, create_server_app, rollout_driver

__all__ = ["BACKGROUND", "LEASE", "DriverStep", "RolloutDriver", "RolloutMetrics", "app_from_env", "create_server_app", "rollout_driver"]
