"""The models a server holds in memory, swapped atomically when an event says a deployment or alias changed.

The serving hot path reads ``hub.get(name)`` — a dict lookup — and never touches a database.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from mloop.errors import NotFound, Unavailable
from mloop.events import EventBus
from mloop.registry import LoadedModel, Registry
from mloop.rollout import bucket
from mloop.serving._batcher import Batcher
from mloop.serving._runtime import Runtime, runtime_for
from mloop.serving._shadow import ShadowLane
from mloop.serving._stats import StatsBook, VersionStats
from mloop.store import Deployment, DeploymentRepository, PolicyRow, RolloutRepository, ServingConfig

if TYPE_CHECKING:
    from mloop.serving._features import FeatureJoin, OnlineFeatures

log = logging.getLogger("mloop.serving")


@dataclass(frozen=True, eq=False)
class ServedVersion:
    """One model version of one deployment: its runtime, its batch queue and its statistics."""

    runtime: Runtime
    batcher: Batcher
    stats: VersionStats
    model: LoadedModel | None = None  # the loaded version itself, for what is not prediction (explanations)

    @property
    def version(self) -> int:
        return self.runtime.version

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """The input column names, one tuple object for the life of this version (the log compares it by identity)."""
        return tuple(c.name for c in self.runtime.inputs)


@dataclass(frozen=True)
class ArmRoute:
    """One arm of a deployment as served: its label (``baseline``, ``candidate``, ``active``, a bandit's version),
    the version that answers for it, and its probability of being routed a request."""

    label: str
    version: ServedVersion
    weight: float


@dataclass(frozen=True)
class Served:
    """One deployment as served: its arms in routing order (weights sum to 1; a standby arm has weight 0 and stays
    loaded), the baseline first among its versions."""

    name: str
    config: ServingConfig
    routes: tuple[ArmRoute, ...]
    revision: int = 0
    policy: str | None = None  # "canary r3" while a stored policy routes the traffic
    shadow: ShadowLane | None = None  # copies of the traffic go to a second version, off the response path
    features: FeatureJoin | None = None  # the feature service filled into each request, if the deployment names one

    @property
    def baseline(self) -> ServedVersion:
        """The version answering when no rollout is in progress: the baseline, the active one, or the first arm."""
        for label in ("baseline", "active"):
            for r in self.routes:
                if r.label == label:
                    return r.version
        return self.routes[0].version

    @property
    def candidate(self) -> ServedVersion | None:
        return next((r.version for r in self.routes if r.label == "candidate"), None)

    @property
    def candidate_percent(self) -> float:
        return next((r.weight * 100.0 for r in self.routes if r.label == "candidate"), 0.0)

    def pick(self, key: str) -> tuple[ServedVersion, str, float]:
        """The arm for a routing key: the slice of [0, 1) its stable bucket falls in (sticky while weights hold)."""
        if len(self.routes) == 1:
            only = self.routes[0]
            return only.version, only.label, only.weight
        point, edge = bucket(key) / 100.0, 0.0
        for r in self.routes:
            edge += r.weight
            if point < edge and r.weight > 0:
                return r.version, r.label, r.weight
        last = next(r for r in reversed(self.routes) if r.weight > 0)
        return last.version, last.label, last.weight

    def versions(self) -> list[ServedVersion]:
        """Each distinct version served, the baseline first."""
        out = [self.baseline]
        for r in self.routes:
            if all(r.version is not v for v in out):
                out.append(r.version)
        return out


class ModelHub:
    """Loads every deployment; ``refresh`` rebuilds the table off the hot path and swaps it whole when the bus
    says something changed. It reads deployments and resolves versions, nothing else of the workspace."""

    def __init__(
        self, registry: Registry, deployments: DeploymentRepository, bus: EventBus, *, poll_interval: float = 0.5, stats: StatsBook | None = None,
        rollouts: RolloutRepository | None = None, features: OnlineFeatures | None = None,
    ) -> None:
        self.registry = registry
        self.features = features
        self.deployments = deployments
        self.rollouts = rollouts
        self.bus = bus
        self.poll_interval = poll_interval
        self.stats = stats or StatsBook()
        self._served: dict[str, Served] = {}
        self._models: dict[tuple[str, int], LoadedModel] = {}
        self._versions: dict[tuple[str, str, int, ServingConfig], ServedVersion] = {}
        self._seen_event = -1
        self._ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self._lanes: dict[tuple[str, int], ShadowLane] = {}  # (deployment, policy revision) -> its shadow lane

    @property
    def ready(self) -> bool:
        return self._ready

    def names(self) -> list[str]:
        return sorted(self._served)

    def get(self, name: str) -> Served:
        served = self._served.get(name)
        if served is None:
            if not self._ready:
                raise Unavailable("The server is still loading its models; retry shortly.")
            raise NotFound(f"No deployment named {name!r}. Served: {self.names()}.")
        return served

    def _version(self, deployment: str, model_name: str, ref: str, config: ServingConfig) -> ServedVersion:
        info = self.registry.resolve(model_name, ref)
        key = (deployment, model_name, info.version, config)
        if key not in self._versions:
            model_key = (model_name, info.version)
            if model_key not in self._models:
                log.info("loading %s version %s", model_name, info.version)
                self._models[model_key] = self.registry.load(model_name, info.version)
            stats = self.stats.get(deployment, info.version)
            runtime = runtime_for(
                self._models[model_key], allow_missing=config.allow_missing, on_fallback=stats.fallback,
                runtime_timeout_ms=config.runtime_timeout_ms,
            )
            batcher = Batcher(runtime.predict, config, name=f"{deployment}-v{info.version}", on_batch=stats.batch_done)
            self._versions[key] = ServedVersion(runtime, batcher, stats, self._models[model_key])
        return self._versions[key]

    def refresh(self) -> None:
        """Re-read deployments and aliases; load what is new; swap the table in one assignment.

        A deployment whose new version fails to load (say, its digests do not verify) keeps serving what it
        served. Versions no longer served retire their batch queues after a grace period, so requests that
        already picked them still complete.
        """
        with self._refresh_lock:
            last = self.bus.last_id()
            if self.features is not None:
                try:
                    self.features.refresh()
                except Exception as exc:  # the definitions could not be read: keep the readers built last time
                    log.error("could not load feature definitions: %s", exc)
            table: dict[str, Served] = {}
            live = {p.deployment: p for p in self.rollouts.all_live()} if self.rollouts is not None else {}
            for dep in self.deployments.list():
                try:
                    table[dep.name] = self._served_for(dep, live.get(dep.name))
                except Exception as exc:  # keep the previous state of this deployment
                    log.error("could not load deployment %s: %s", dep.name, exc)
                    if dep.name in self._served:
                        table[dep.name] = self._served[dep.name]
            in_use = {id(v) for s in table.values() for v in s.versions()}
            lanes_in_use = {id(s.shadow) for s in table.values() if s.shadow is not None}
            for lane_key, lane in list(self._lanes.items()):
                if id(lane) not in lanes_in_use:
                    lane.close()
                    del self._lanes[lane_key]
            self._served = table
            for key, sv in list(self._versions.items()):
                if id(sv) not in in_use:
                    sv.batcher.retire()
                    del self._versions[key]
            models_in_use = {(k[1], k[2]) for k in self._versions}
            self._models = {k: v for k, v in self._models.items() if k in models_in_use}
            self._seen_event = last
            self._ready = True

    def _served_for(self, dep: Deployment, policy: PolicyRow | None) -> Served:
        """The arms of one deployment: its live traffic policy's if it has one, else its alias and any candidate."""
        def version(ref: str) -> ServedVersion:
            return self._version(dep.name, dep.model_name, ref, dep.serving)

        join = None
        if dep.serving.feature_service is not None:
            if self.features is None:
                raise NotFound(f"Deployment {dep.name!r} names feature service {dep.serving.feature_service!r}, but this server reads no features.")
            join = self.features.join(dep.serving.feature_service)

        if policy is not None:
            from mloop.rollout import build_policy, parse_policy

            logic = build_policy(parse_policy(policy.document), state=policy.state)
            weights = logic.weights()
            doc = policy.document
            order = ["candidate", "baseline"] if "candidate" in weights else list(weights)  # a canary's candidate first: sticky as it grows
            # An arm is named by the document field holding its version (baseline, candidate, active, standby, primary,
            # shadow), or is the version itself (a bandit's arms).
            routes = tuple(ArmRoute(label, version(str(doc.get(label, label))), float(weights[label])) for label in order)
            lane = None
            if policy.kind == "shadow":
                lane = self._lanes.get((dep.name, policy.revision))
                if lane is None:
                    shadow_version = next(r.version for r in routes if r.label == "shadow")
                    lane = ShadowLane(shadow_version, queue_size=int(doc.get("queue_size", 1000)), sample=float(doc.get("sample", 1.0)))
                    self._lanes[(dep.name, policy.revision)] = lane
            return Served(dep.name, dep.serving, routes, dep.revision, f"{policy.kind} r{policy.revision}", lane, join)
        baseline = version(dep.alias)
        rollout = dep.rollout or {}
        if rollout.get("candidate_alias"):
            share = float(rollout.get("percent", 0.0)) / 100.0
            candidate = version(str(rollout["candidate_alias"]))
            return Served(dep.name, dep.serving, (ArmRoute("candidate", candidate, share), ArmRoute("baseline", baseline, 1.0 - share)), dep.revision,
                          features=join)
        return Served(dep.name, dep.serving, (ArmRoute("baseline", baseline, 1.0),), dep.revision, features=join)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                if self.bus.last_id() != self._seen_event:
                    self.refresh()
            except Exception as exc:  # a database hiccup must not kill the watcher
                log.error("event poll failed: %s", exc)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="mloop-model-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; let every queue finish what it holds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sv in self._versions.values():
            sv.batcher.retire(grace_s=0.0)
        for sv in self._versions.values():
            sv.batcher.join(timeout=30)
