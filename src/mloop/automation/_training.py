"""A recipe runs in a worker process of its own, not on the controller's thread: training is CPU-bound Python that
would hold the serving process's GIL for minutes, and a recipe that crashes the interpreter (a native library's
segfault, the kernel's OOM killer) must fail its attempt, not take the server down with it. One worker is kept
between fits (started with ``spawn``, so it shares nothing with the server but the files it reads)."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from mloop.errors import MloopError

log = logging.getLogger("mloop.automation")


class RecipeCrashed(MloopError):
    """The worker process running a recipe died (a crash, or it was killed): the recipe's result is lost."""


def _fit(callable_path: str, params: dict[str, Any], paths: Sequence[str], target: str) -> bytes:
    """In the worker: read the rows, run the recipe, hand the fitted model back pickled."""
    import pandas as pd

    from mloop.automation._loop_policy import RecipeSpec

    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    model = RecipeSpec(callable=callable_path, params=params).resolve()(frame, target, **params)
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def _update(model: bytes, paths: Sequence[str], target: str) -> bytes:
    """In the worker: the model (pickled) after it has also learnt the rows of ``paths`` (``partial_fit``)."""
    import pandas as pd

    from mloop.training import updated

    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    features = [c for c in frame.columns if c != target]
    learnt = updated(pickle.loads(model), frame[features], frame[target])  # noqa: S301 - the controller's own pickle of a verified version
    return pickle.dumps(learnt, protocol=pickle.HIGHEST_PROTOCOL)


def _die_with_parent(parent: int) -> None:
    """In the worker: exit as soon as the controller that started it is gone (killed, say), instead of training on
    for nobody."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="mloop-orphan-watch", daemon=True).start()


class Trainer:
    """Runs recipes in one worker process, started on the first fit and restarted after a crash."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def fit(self, callable_path: str, params: dict[str, Any], paths: Sequence[str], target: str) -> Any:
        """The fitted model of ``callable_path(frame, target, **params)`` on the rows of the Parquet ``paths``; an
        exception the recipe raises is raised here as it was, a worker that died is :class:`RecipeCrashed`."""
        return self._run(f"the recipe {callable_path}", _fit, callable_path, dict(params), [str(p) for p in paths], target)

    def update(self, model: Any, paths: Sequence[str], target: str) -> Any:
        """A copy of ``model`` that has also learnt the rows of ``paths`` (an online model's ``partial_fit``)."""
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        return self._run(f"the online update of {type(model).__name__}", _update, blob, [str(p) for p in paths], target)

    def _run(self, what: str, work: Callable[..., bytes], *args: Any) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=_die_with_parent, initargs=(os.getpid(),))
        try:
            blob = self._pool.submit(work, *args).result()
        except BrokenProcessPool:
            self.close()
            raise RecipeCrashed(f"the process running {what} died before it finished (a crash, or killed for memory)") from None
        return pickle.loads(blob)  # noqa: S301 - our own worker's answer, on this machine

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
