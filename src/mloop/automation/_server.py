"""The background decisions a server runs beside its routes, each under its lease: the rollout driver, the loop
controller and the pipeline schedules (``mloop.server`` composes them with serving's app)."""

from __future__ import annotations

from typing import Any

from mloop._background import LeasedLoop
from mloop.workspace import Workspace


def rollout_driver(workspace: Workspace, registry: Any = None) -> LeasedLoop | None:
    """The rollout driver as leased background work every ``MLOOP_ROLLOUT_INTERVAL`` seconds (None when 0). It reads
    outcomes that are ``2 × MLOOP_LOG_FLUSH_INTERVAL + 1`` seconds old, so every server has written them."""
    from mloop.automation._rollout_driver import LEASE, RolloutDriver, RolloutMetrics
    from mloop.serving import Rollouts

    settings = workspace.settings
    if settings.rollout_interval <= 0:
        return None
    driver = RolloutDriver(Rollouts(workspace.registry, workspace.store, workspace.bus), workspace.logs_dir,
                           grace=2 * settings.log_flush_interval + 1.0, metrics=RolloutMetrics(registry) if registry is not None else None)
    return LeasedLoop(LEASE, workspace.store.monitors, driver.tick, interval=settings.rollout_interval)


def loop_controller(workspace: Workspace, registry: Any = None) -> LeasedLoop | None:
    """The loop controller as leased background work every ``MLOOP_LOOP_INTERVAL`` seconds (None when 0)."""
    from mloop.automation._controller import LEASE, LoopController

    interval = workspace.settings.loop_interval
    if interval <= 0:
        return None
    controller = LoopController(workspace.store, workspace.bus, workspace.registry, workspace.tracker, workspace.logs_dir, workspace.root / "loop",
                                grace=2 * workspace.settings.log_flush_interval + 1.0)
    return LeasedLoop(LEASE, workspace.store.monitors, controller.tick, interval=interval)


def pipeline_schedules(workspace: Workspace, registry: Any = None) -> LeasedLoop | None:
    """The pipeline schedules (``mloop schedule``) as leased background work every ``MLOOP_SCHEDULE_INTERVAL`` seconds
    (None when 0): each due pipeline runs in a subprocess, so its code cannot take the server down."""
    from mloop.pipelines._schedule import LEASE, ScheduleRunner

    interval = workspace.settings.schedule_interval
    if interval <= 0:
        return None
    runner = ScheduleRunner.of(workspace)
    return LeasedLoop(LEASE, workspace.store.monitors, runner.tick, interval=interval)


BACKGROUND = (rollout_driver, loop_controller, pipeline_schedules)

