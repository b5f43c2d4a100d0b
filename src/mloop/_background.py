"""Background work that runs in exactly one process: a daemon thread that ticks every ``interval`` seconds while it
holds a lease in the metadata store, so that of several server workers (or a server and ``mloop controller``) one
does the work and another takes over within ``3 × interval`` if it dies. Monitors and the rollout driver run on it."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from mloop.errors import InvalidInput

log = logging.getLogger("mloop.background")


class Leases(Protocol):
    """The store's leases (``MetadataStore.monitors`` holds them)."""

    def acquire(self, lease: str, holder: str, ttl: float) -> bool: ...

    def release(self, lease: str, holder: str) -> None: ...


class LeasedLoop:
    """Calls ``tick()`` every ``interval`` seconds on a daemon thread, only while holding ``lease``; ``on_stop`` runs
    once after the last tick (close what the work opened)."""

    def __init__(self, lease: str, leases: Leases, tick: Callable[[], Any], *, interval: float, holder: str | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        if not interval > 0:
            raise InvalidInput(f"The {lease} interval must be positive, got {interval}.", field="interval")
        self.lease = lease
        self.leases = leases
        self.interval = interval
        self.holder = holder or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tick = tick
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Any:
        """One tick if this process holds (or takes) the lease; None when another process has it. While the tick runs
        (training a model can take minutes) a heartbeat renews the lease every interval, so no other process takes
        over work that is still going on; a process that dies stops renewing and is replaced within 3 intervals."""
        if not self.leases.acquire(self.lease, self.holder, ttl=3 * self.interval):
            return None
        done = threading.Event()
        heartbeat = threading.Thread(target=self._renew, args=(done,), name=f"mloop-{self.lease}-lease", daemon=True)
        heartbeat.start()
        try:
            return self._tick()
        finally:
            done.set()
            heartbeat.join()

    def _renew(self, done: threading.Event) -> None:
        while not done.wait(self.interval):
            try:
                if not self.leases.acquire(self.lease, self.holder, ttl=3 * self.interval):
                    log.error("%s: another process took the lease while this one was still working", self.lease)
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("%s: renewing the lease failed", self.lease)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # a bug in one tick must not stop the work for good
                log.exception("%s tick failed", self.lease)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"mloop-{self.lease}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the tick in progress, release the lease (so another process takes over at once) and close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.leases.release(self.lease, self.holder)
        if self._on_stop is not None:
            self._on_stop()
