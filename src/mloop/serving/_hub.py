"""The models a server holds in memory, swapped atomically when an event says a deployment or alias changed.

The serving hot path reads ``hub.get(name)`` — a dict lookup — and never touches a database.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from mloop.errors import NotFound, Unavailable
from mloop.registry import LoadedModel
from mloop.rollout import Arm, route
from mloop.workspace import Workspace

log = logging.getLogger("mloop.serving")


@dataclass(frozen=True)
class Served:
    """One deployment as served: the baseline model and, during a rollout, a candidate and its share."""

    name: str
    baseline: LoadedModel
    candidate: LoadedModel | None = None
    candidate_percent: float = 0.0

    def pick(self, request_id: str) -> tuple[LoadedModel, Arm]:
        if self.candidate is not None and route(request_id, self.candidate_percent) is Arm.CANDIDATE:
            return self.candidate, Arm.CANDIDATE
        return self.baseline, Arm.BASELINE


class ModelHub:
    """Loads every deployment of a workspace; ``refresh`` rebuilds the table off the hot path and swaps it whole."""

    def __init__(self, workspace: Workspace, *, poll_interval: float = 0.5) -> None:
        self.workspace = workspace
        self.poll_interval = poll_interval
        self._served: dict[str, Served] = {}
        self._cache: dict[tuple[str, int], LoadedModel] = {}
        self._seen_event = -1
        self._ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()

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

    def _load(self, model_name: str, ref: str) -> LoadedModel:
        info = self.workspace.registry.resolve(model_name, ref)
        key = (model_name, info.version)
        if key not in self._cache:
            log.info("loading %s version %s", model_name, info.version)
            self._cache[key] = self.workspace.registry.load(model_name, info.version)
        return self._cache[key]

    def refresh(self) -> None:
        """Re-read deployments and aliases; load what is new; swap the table in one assignment.

        A deployment whose new version fails to load (say, its digests do not verify) keeps serving what it served.
        """
        with self._refresh_lock:
            last = self.workspace.bus.last_id()
            table: dict[str, Served] = {}
            for dep in self.workspace.deployments():
                try:
                    baseline = self._load(dep.model_name, dep.alias)
                    candidate, percent = None, 0.0
                    rollout = dep.rollout or {}
                    if rollout.get("candidate_alias"):
                        candidate = self._load(dep.model_name, str(rollout["candidate_alias"]))
                        percent = float(rollout.get("percent", 0.0))
                    table[dep.name] = Served(dep.name, baseline, candidate, percent)
                except Exception as exc:  # keep the previous state of this deployment
                    log.error("could not load deployment %s: %s", dep.name, exc)
                    if dep.name in self._served:
                        table[dep.name] = self._served[dep.name]
            in_use = {(m.name, m.version) for s in table.values() for m in (s.baseline, s.candidate) if m is not None}
            self._served = table
            self._cache = {k: v for k, v in self._cache.items() if k in in_use}
            self._seen_event = last
            self._ready = True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                if self.workspace.bus.last_id() != self._seen_event:
                    self.refresh()
            except Exception as exc:  # a database hiccup must not kill the watcher
                log.error("event poll failed: %s", exc)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="mloop-model-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
