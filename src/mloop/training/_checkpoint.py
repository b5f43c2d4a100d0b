"""Training checkpoints: written atomically (a temporary file in the same folder, fsynced, then renamed), read back
with ``weights_only`` (no pickle code runs), and pruned to the newest few. A crash at any instant leaves the previous
checkpoint whole."""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput

_NAME = re.compile(r"^step-(\d{9})\.pt$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:09d}.pt"


def checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoints in ``folder``, oldest first (temporary files of an interrupted write are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], *, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step``; keep the newest ``keep`` checkpoints."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(folder, step)
    fd, tmp = tempfile.mkstemp(prefix=".step-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for old in checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return target


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, loaded without running pickle code (tensors, numbers, strings, lists and dicts only)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise InvalidInput(f"Checkpoint {path} could not be read (truncated, or not written by mloop: {type(exc).__name__}); delete it to "
                           "resume from the one before.", field="checkpoint") from exc
    if not isinstance(state, dict) or "format" not in state:
        raise InvalidInput(f"{path} is not an mloop training checkpoint.", field="checkpoint")
    return state


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from (dropout, shuffling in user code)."""
    import numpy as np
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    np_state = np.random.get_state()
    state["numpy"] = torch.from_numpy(np_state[1].astype("int64"))  # type: ignore[index]
    state["numpy_pos"] = int(np_state[2])  # type: ignore[index, misc]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(v) for v in state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype("uint32"), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
