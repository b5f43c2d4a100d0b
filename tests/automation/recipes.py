"""Training recipes the loop tests name by import path, as a user's policy would."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mloop.training import OnlineClassifier, tabular


def shuffled(frame: pd.DataFrame, target: str, **params: Any) -> Any:
    """A recipe that learns nothing: the labels are shuffled first (the challenger that must not go live)."""
    rng = np.random.default_rng(0)
    broken = frame.assign(**{target: rng.permutation(frame[target].to_numpy())})
    return tabular(broken, target, **params)


def explodes(frame: pd.DataFrame, target: str, **params: Any) -> Any:
    raise RuntimeError("the recipe's own bug")


def waits(frame: pd.DataFrame, target: str, *, folder: str, **params: Any) -> Any:
    """Say that training began (``folder/started``), then wait for ``folder/go`` before training: a training step a
    test can kill a process in the middle of."""
    import time
    from pathlib import Path

    Path(folder, "started").touch()
    deadline = time.monotonic() + 120
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return tabular(frame, target, **params)


def routing_seen(frame: pd.DataFrame, target: str, *, workspace: str, **params: Any) -> Any:
    """Write down the traffic policy that is live while this recipe trains (``workspace/routing-seen.json``), then
    learn nothing (shuffled labels): what a fallback test needs to see during the retrain."""
    import json
    from pathlib import Path

    from mloop.workspace import Workspace

    live = Workspace.open(workspace).store.rollouts.live("toy")
    Path(workspace, "routing-seen.json").write_text(json.dumps(None if live is None else live.document))
    return shuffled(frame, target, **params)


def dies(frame: pd.DataFrame, target: str, **params: Any) -> Any:
    """A recipe whose process dies under it (as a native library's segfault or the OOM killer would do)."""
    import os

    os._exit(3)


def tells_pid(frame: pd.DataFrame, target: str, *, folder: str, **params: Any) -> Any:
    """Write down the process that trains (``folder/pid``), then train as the default recipe does."""
    import os
    from pathlib import Path

    Path(folder, "pid").write_text(str(os.getpid()))
    return tabular(frame, target, **params)


class WaitsOnline(OnlineClassifier):
    """An online model whose updates, once ``folder/armed`` exists, say they began (``folder/started``) and wait for
    ``folder/go``: an online update a test can kill a process in the middle of."""

    def __init__(self, folder: str = "", **params: Any) -> None:
        super().__init__(**params)
        self.folder = folder

    def partial_fit(self, X: pd.DataFrame, y: Any, classes: Any = None) -> WaitsOnline:
        import time
        from pathlib import Path

        if self.folder and Path(self.folder, "armed").exists():
            Path(self.folder, "started").touch()
            deadline = time.monotonic() + 120
            while not Path(self.folder, "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        super().partial_fit(X, y)
        return self
