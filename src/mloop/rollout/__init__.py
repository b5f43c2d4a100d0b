"""Rollout: traffic policies and their statistics — pure logic, no I/O."""

from __future__ import annotations

from mloop.rollout._bandit import BanditPolicy, BanditSpec
from mloop.rollout._canary_policy import Action, CanaryPolicy, CanarySpec, MetricSpec, PolicyDecision
from mloop.rollout._routing import Arm, bucket, route
from mloop.rollout._sequential import Evidence, WorseThan
from mloop.rollout._simulate import simulate_canary
from mloop.rollout._specs import (
    POLICIES,
    BlueGreenPolicy,
    BlueGreenSpec,
    ShadowPolicy,
    ShadowSpec,
    TrafficPolicy,
    TrafficSplit,
    build_policy,
    parse_policy,
    parse_split,
)

__all__ = [
    "POLICIES",
    "Action",
    "Arm",
    "BanditPolicy",
    "BanditSpec",
    "BlueGreenPolicy",
    "BlueGreenSpec",
    "CanaryPolicy",
    "CanarySpec",
    "Evidence",
    "MetricSpec",
    "PolicyDecision",
    "ShadowPolicy",
    "ShadowSpec",
    "TrafficPolicy",
    "TrafficSplit",
    "WorseThan",
    "bucket",
    "build_policy",
    "parse_policy",
    "parse_split",
    "route",
    "simulate_canary",
]
