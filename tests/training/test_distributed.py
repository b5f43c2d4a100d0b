"""Data-parallel training on Ray Train: 2 workers train as 1 does (and as the in-process trainer does), a worker
killed with SIGKILL is replaced and the group resumes from its last reported checkpoint, a second call of the same
run resumes from Ray's storage, and bad input is refused by name before any Ray work."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mloop.errors import InvalidInput
from mloop.training import DistributedResult, TabularNet, TrainConfig, Trainer, evaluate, fit_distributed, tabular_net, training_tensors
from tests.conftest import toy_frame

FRAME = toy_frame(3000, seed=1)
NET = tabular_net(FRAME, "y", hidden=(32, 16), dropout=0.0)  # no dropout: ranks would draw masks for other rows than one process
DATA = training_tensors(NET, FRAME, "y")
TRAIN = tuple(t[:2400] for t in DATA)  # an even number of rows: both ranks' shares of every step are the same size
VALID = tuple(t[2400:] for t in DATA)
STEPS = 4 * 38  # 4 epochs of ceil(2400 / 64) steps, whatever the number of workers

# The same global batch whatever the number of workers: batch_size is global (each of W ranks takes 64 / W rows of the
# same epoch order, and the union of the ranks' micro-batches i is the one process's micro-batch i); DDP averages the
# ranks' mean gradients, which, with equal shares, is the mean gradient over the 64 rows. So every optimizer step sees
# the same rows and the same gradient up to the order of float additions (rounding ~1e-7 relative a step): over 152
# steps the final validation loss moves by well under 1e-4, which is the tolerance below (accuracy: within 0.5 %).
LOSS_TOLERANCE = 1e-4


def config(folder: Path | None = None, every: int = 10, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {"epochs": 4, "batch_size": 64, "lr": 3e-3, "log_every": 4, "progress": False, "schedule": "cosine", "warmup_steps": 5}
    if folder is not None:
        base.update(checkpoint_every=every, checkpoint_dir=folder)
    return TrainConfig(**{**base, **kw})


def accuracy(module: torch.nn.Module) -> float:
    return evaluate(module, VALID, metrics={"accuracy": lambda out, y: float((out.argmax(1) == y).float().mean())})["accuracy"]


class KillSwitch:
    """A loss that, on ``rank``'s ``after``-th micro-batch of the first attempt, writes its process id to ``marker``
    (the test then SIGKILLs it); every call sleeps a little so the run is still going when the signal lands."""

    def __init__(self, marker: Path, after: int, rank: int = 0) -> None:
        self.marker, self.after, self.rank, self.calls = marker, after, rank, 0

    def __call__(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import ray.train

        self.calls += 1
        if self.calls == self.after and ray.train.get_context().get_world_rank() == self.rank and not self.marker.exists():
            tmp = self.marker.with_suffix(".tmp")
            tmp.write_text(f"{os.getpid()} {self.calls}")
            tmp.replace(self.marker)
        time.sleep(0.01)
        return torch.nn.functional.cross_entropy(out, target)


# -- bad input: refused before any Ray work (no cluster needed) -----------------------------------------------------
@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"workers": 0}, "workers", "workers must be a positive integer, got 0"),
    ({"workers": 3}, "batch_size", "batch_size 64 is the global batch and must divide among 3 workers"),
    ({"build": 42}, "build", "build must be a function returning a torch.nn.Module"),
    ({"build": lambda: "net"}, "build", "build must return a torch.nn.Module, got str"),
    ({"build": {"numeric": ["x1"]}}, "build", "lacks 'vocab'"),
    ({"config": config()}, "checkpoint_dir", "max_failures=2 needs checkpoint_every and checkpoint_dir"),
    ({"config": config(checkpoint_dir=Path("ck"))}, "checkpoint_every", "needs checkpoint_every"),
    ({"config": {"epochs": 1}}, "config", "config must be a TrainConfig, got dict"),
    ({"max_failures": -1}, "max_failures", "max_failures must be an integer of at least 0"),
    ({"ray": "127.0.0.1:1"}, "ray", "no Ray cluster answers there"),
    ({"ray": "head-node"}, "ray", "a cluster's HOST:PORT"),
    ({"ray": 3}, "ray", "ray takes 'auto'"),
    ({"storage": None}, "storage", "storage must be a folder path"),
    ({"train": (DATA[0], DATA[1][:10], DATA[2])}, "data", "different lengths"),
])
def test_bad_input_is_refused_by_name_before_any_ray_work(kwargs: dict[str, Any], field: str, message: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ray(*_: Any) -> None:
        raise AssertionError("Ray was reached")

    monkeypatch.setattr("mloop.training._distributed._connect", no_ray)
    call: dict[str, Any] = {"build": NET.config(), "train": TRAIN, "config": config(tmp_path / "ck"), "storage": tmp_path / "ray", **kwargs}
    with pytest.raises(InvalidInput, match=message) as err:
        fit_distributed(call.pop("build"), call.pop("train"), **call)
    assert err.value.field == field


# -- on Ray --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray() -> Any:
    """One local Ray for the module; its controller polls its workers every 0.5 s instead of 2 s (reports are taken
    once a poll, and a lost worker is noticed at one), which keeps these tests short."""
    import ray

    before = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"  # read by processes Ray starts from here
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
    if before is None:
        del os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]
    else:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = before


@pytest.fixture(scope="module")
def runs(local_ray: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same training in-process, on 1 Ray worker and on 2."""
    folder = tmp_path_factory.mktemp("runs")
    torch.manual_seed(config().seed)  # the initial weights fit_distributed draws: from_config under the config's seed
    local = TabularNet.from_config(NET.config())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker runs (one CPU, one thread): the same order of additions in every matmul
    try:
        out: dict[str, Any] = {"local": (local, Trainer(config()).fit(local, TRAIN, VALID)), "folder": folder}
    finally:
        torch.set_num_threads(threads)
    for workers in (1, 2):  # a checkpoint every 40 steps: Ray's controller takes one report a poll, and the run's end waits for them all
        out[workers] = fit_distributed(NET.config(), TRAIN, VALID, config=config(folder / f"ck{workers}", every=40), workers=workers,
                                       storage=folder / "ray", name=f"run{workers}")
    return out


@pytest.mark.slow
def test_two_workers_train_as_one_worker_and_as_the_in_process_trainer(runs: dict[str, Any]) -> None:
    local, local_result = runs["local"]
    one, two = runs[1], runs[2]
    assert isinstance(two, DistributedResult)
    assert local_result.steps == one.steps == two.steps == STEPS
    assert one.samples == two.samples == 4 * 2400  # both ranks' rows counted, each row once an epoch
    assert one.attempts == two.attempts == 1 and two.restarts == 0 and two.resumed_from is None
    reference = evaluate(local, VALID)["loss"]
    assert abs(evaluate(one.module, VALID)["loss"] - reference) < LOSS_TOLERANCE
    assert abs(evaluate(two.module, VALID)["loss"] - reference) < LOSS_TOLERANCE
    np.testing.assert_allclose(two.curve("valid_loss"), local_result.curve("valid_loss"), atol=LOSS_TOLERANCE)
    np.testing.assert_allclose(two.curve(), one.curve(), atol=LOSS_TOLERANCE)
    assert abs(accuracy(two.module) - accuracy(local)) <= 0.005
    assert accuracy(two.module) > 0.7  # it learned the task (the label is a noisy logistic of the inputs)
    assert two.samples_per_second > 0 and two.seconds >= two.train_seconds > 0


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_is_replaced_and_the_group_resumes_from_the_last_reported_checkpoint(
        runs: dict[str, Any], tmp_path: Path) -> None:
    marker = tmp_path / "victim"
    killed: list[tuple[int, int]] = []

    def watch() -> None:  # kill rank 0 (the one that writes and reports the checkpoints) once it passes step 60
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.02)
        if marker.exists():
            pid, step = map(int, marker.read_text().split())
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, step))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = fit_distributed(NET.config(), TRAIN, VALID, config=config(tmp_path / "ck"), workers=2, max_failures=2, storage=tmp_path / "ray",
                             loss=KillSwitch(marker, after=60))
    watcher.join(timeout=5)
    assert killed, "the worker was never killed"
    (pid, step), = killed
    assert result.steps == STEPS  # it finished every step
    assert result.attempts >= 2 and result.restarts >= 1
    assert result.resumed_from is not None and 0 < result.resumed_from <= step + 10  # from a checkpoint, not from scratch
    assert result.resumed_from % 10 == 0
    assert [s for s, _ in result.history["train_loss"]] == list(range(4, STEPS + 1, 4))  # one whole curve, no gap, no repeat
    # the resumed run recomputes the lost steps from the checkpoint's exact state: the same model as the uninterrupted one
    whole = runs[2]
    assert abs(evaluate(result.module, VALID)["loss"] - evaluate(whole.module, VALID)["loss"]) < LOSS_TOLERANCE
    np.testing.assert_allclose(result.curve("valid_loss"), whole.curve("valid_loss"), atol=LOSS_TOLERANCE)
    assert abs(accuracy(result.module) - accuracy(whole.module)) <= 0.005


@pytest.mark.slow
def test_a_second_call_of_the_same_name_resumes_from_the_runs_last_checkpoint_and_refuses_other_settings(runs: dict[str, Any]) -> None:
    folder = runs["folder"]
    again = fit_distributed(NET.config(), TRAIN, VALID, config=config(folder / "again", every=40), workers=2, storage=folder / "ray", name="run2")
    assert again.resumed_from == 120 and again.steps == STEPS  # Ray's storage held checkpoints 80 and 120 of run2
    assert evaluate(again.module, VALID)["loss"] == pytest.approx(evaluate(runs[2].module, VALID)["loss"], abs=LOSS_TOLERANCE)
    with pytest.raises(InvalidInput, match="other settings \\(lr\\)") as err:  # raised in the workers, raised here as itself
        fit_distributed(NET.config(), TRAIN, VALID, config=config(folder / "other", every=40, lr=1e-2), workers=2, storage=folder / "ray",
                        name="run2", max_failures=0)
    assert err.value.field == "lr"
