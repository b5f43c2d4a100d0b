"""Automation: background decisions taken in one leased process — the rollout driver (canaries advance, promote
and roll back; bandits re-weight), the loop controller (alarms become retraining attempts: train, gate, roll out),
the gate's paired tests, and the server that runs them beside its routes."""

from __future__ import annotations

from mloop.automation._controller import LoopController
from mloop.automation._gate import GateResult, GateSpec, delong, judge
from mloop.automation._loop import Loop
from mloop.automation._loop_policy import LoopPolicy, load_loop_policies, parse_loop_policy
from mloop.automation._loop_rules import Admission, Trigger, admit, trigger_for
from mloop.automation._rollout_driver import LEASE, DriverStep, RolloutDriver, RolloutMetrics
from mloop.automation._server import BACKGROUND, loop_controller, rollout_driver

__all__ = [
    "BACKGROUND", "LEASE", "Admission", "DriverStep", "GateResult", "GateSpec", "Loop", "LoopController", "LoopPolicy", "RolloutDriver",
    "RolloutMetrics", "Trigger", "admit", "delong", "judge", "load_loop_policies", "loop_controller",
    "parse_loop_policy", "rollout_driver", "trigger_for",
]
