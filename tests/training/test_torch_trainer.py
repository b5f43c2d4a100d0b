"""The PyTorch trainer: exact resume, accumulation, checkpointing, early stopping, precision, and its bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mloop.errors import InvalidInput
from mloop.training import TrainConfig, Trainer, checkpoints, evaluate, lr_factor, tensors
from mloop.workspace import Workspace

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3000, 12))
Y = (X[:, 0] - X[:, 1] + RNG.normal(size=3000) > 0).astype(int)
DATA = tensors(X, Y)
VALID = tensors(X[:500], Y[:500])


def net(dropout: float = 0.2) -> torch.nn.Sequential:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(32, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 2))


def config(tmp: Path | None = None, **kw: object) -> TrainConfig:
    base: dict[str, object] = {"epochs": 3, "batch_size": 64, "log_every": 1, "progress": False, "deterministic": True, "accumulate": 2,
                               "schedule": "cosine", "warmup_steps": 4}
    if tmp is not None:
        base.update(checkpoint_every=7, checkpoint_dir=tmp)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_a_run_stopped_and_resumed_logs_the_same_losses_as_one_that_was_not(tmp_path: Path) -> None:
    whole = Trainer(config(tmp_path / "a")).fit(net(), DATA, VALID)
    cfg = config(tmp_path / "b")
    first = Trainer(cfg).fit(net(), DATA, VALID, stop_after=40)  # stops between checkpoints 35 and 42
    assert first.steps == 40 and [p.name for p in checkpoints(tmp_path / "b")] == ["step-000000028.pt", "step-000000035.pt"]
    resumed = Trainer(cfg).fit(net(), DATA, VALID)  # a fresh module: everything comes from the checkpoint
    assert resumed.resumed_from == 35
    assert whole.steps == resumed.steps == 3 * 24
    assert whole.curve() == resumed.curve()  # exactly: every step computed again from the same state
    assert whole.history["valid_loss"] == resumed.history["valid_loss"]
    assert whole.history["lr"] == resumed.history["lr"]


def test_resume_refuses_a_checkpoint_written_with_other_settings(tmp_path: Path) -> None:
    Trainer(config(tmp_path)).fit(net(), DATA, stop_after=10)
    with pytest.raises(InvalidInput, match="other settings \\(batch_size\\)") as err:
        Trainer(config(tmp_path, batch_size=32)).fit(net(), DATA)
    assert err.value.field == "batch_size"


def test_a_corrupt_checkpoint_is_named_and_a_half_written_one_ignored(tmp_path: Path) -> None:
    Trainer(config(tmp_path)).fit(net(), DATA, stop_after=10)
    (tmp_path / ".step-x.tmp").write_bytes(b"half")  # what a crash during a write leaves: never picked up
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000000007.pt"]
    (tmp_path / "step-000000007.pt").write_bytes(b"garbage")
    with pytest.raises(InvalidInput, match="could not be read .*delete it to resume from the one before"):
        Trainer(config(tmp_path)).fit(net(), DATA)


def test_accumulated_micro_batches_take_the_same_steps_as_one_big_batch() -> None:
    big = Trainer(config(batch_size=256, accumulate=1, optimizer="sgd", lr=0.05)).fit(net(0.0), DATA)
    small = Trainer(config(batch_size=64, accumulate=4, optimizer="sgd", lr=0.05)).fit(net(0.0), DATA)
    assert big.steps == small.steps == 3 * 12
    np.testing.assert_allclose(small.curve(), big.curve(), rtol=1e-5)


def test_gradient_checkpointing_recomputes_the_same_gradients(tmp_path: Path) -> None:
    from mloop.training import mlp
    from tests.conftest import toy_frame

    frame = toy_frame(800)
    runs = []
    for on in (False, True):
        torch.manual_seed(0)
        runs.append(mlp(frame, "y", epochs=2, batch_size=64, dropout=0.2, holdout=0.0, gradient_checkpointing=on, deterministic=True))
    probe = frame.drop(columns="y")
    np.testing.assert_allclose(runs[0].predict_proba(probe), runs[1].predict_proba(probe), atol=1e-6)
    with pytest.raises(InvalidInput, match="gradient_checkpointing needs an nn.Sequential") as err:
        Trainer(config(gradient_checkpointing=True)).fit(torch.nn.Bilinear(12, 12, 2), DATA)
    assert err.value.field == "gradient_checkpointing"


def test_early_stopping_keeps_the_best_weights() -> None:
    rng = np.random.default_rng(3)
    noise = tensors(rng.normal(size=(200, 12)), rng.integers(0, 2, 200))  # labels the inputs cannot explain: it can only overfit
    held = tensors(rng.normal(size=(200, 12)), rng.integers(0, 2, 200))
    big = torch.nn.Sequential(torch.nn.Linear(12, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2))
    result = Trainer(config(epochs=200, batch_size=50, accumulate=1, lr=1e-2, patience=3, schedule="constant", warmup_steps=0)).fit(big, noise, held)
    assert result.stopped_early and result.steps < 200 * 4
    losses = dict(result.history["valid_loss"])
    assert result.best_step == min(losses, key=losses.__getitem__)
    assert evaluate(big, held)["loss"] == pytest.approx(result.best_valid_loss, rel=1e-6)  # the weights of the best evaluation
    assert sorted(losses)[-1] == result.steps and losses[result.steps] > result.best_valid_loss


def test_bf16_autocast_trains_on_cpu_and_fp16_is_refused_without_a_gpu() -> None:
    result = Trainer(config(precision="bf16", epochs=4, accumulate=1)).fit(net(0.0), DATA)
    curve = result.curve()
    assert np.mean(curve[-5:]) < np.mean(curve[:5]) - 0.1
    with pytest.raises(InvalidInput, match="'fp16' needs a CUDA GPU") as err:
        Trainer(config(precision="fp16")).fit(net(), DATA)
    assert err.value.field == "precision"


@pytest.mark.parametrize(("settings", "field"), [
    ({"batch_size": 0}, "batch_size"), ({"lr": float("nan")}, "lr"), ({"schedule": "exp"}, "schedule"), ({"precision": "int8"}, "precision"),
    ({"checkpoint_every": 5}, "checkpoint_dir"), ({"accumulate": 1.5}, "accumulate"), ({"device": "tpu"}, "device"), ({"patience": -1}, "patience"),
])
def test_bad_settings_are_refused_by_name(settings: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        TrainConfig(**settings)  # type: ignore[arg-type]
    assert err.value.field == field
    with pytest.raises(InvalidInput, match="Unknown training setting 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})


def test_bad_data_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="different lengths"):
        Trainer(config()).fit(net(), (DATA[0], DATA[1][:10]))
    with pytest.raises(InvalidInput, match="no rows"):
        Trainer(config()).fit(net(), tensors(X[:0], Y[:0]))
    with pytest.raises(InvalidInput, match="tuple of tensors or a map-style dataset"):
        Trainer(config()).fit(net(), 42)


def test_schedules_warm_up_then_decay() -> None:
    assert [lr_factor("cosine", s, 100, 10) for s in (0, 9)] == [0.1, 1.0]
    assert lr_factor("cosine", 10, 100, 10) == 1.0 and lr_factor("cosine", 55, 100, 10) == pytest.approx(0.5)
    assert lr_factor("linear", 100, 100, 0) == 0.0 and lr_factor("constant", 77, 100, 0) == 1.0
    peak = max(range(100), key=lambda s: lr_factor("onecycle", s, 100, 0))
    assert 25 <= peak <= 31 and lr_factor("onecycle", 99, 100, 0) < 0.01


def test_metrics_reach_the_run_in_batches(workspace: Workspace) -> None:
    with workspace.tracker.start_run("trainer") as run:
        calls = []
        original = run.log_metric_steps
        run.log_metric_steps = lambda points: (calls.append(len(points)), original(points))  # type: ignore[method-assign]
        result = Trainer(config(epochs=1, accumulate=1, log_every=5), run=run).fit(net(), DATA, VALID)
    history = workspace.tracker.client.get_metric_history(run.run_id, "train_loss")
    logged = sorted(history, key=lambda m: m.step)
    assert [m.step for m in logged] == [s for s, _ in result.history["train_loss"]] == list(range(5, 47, 5))
    assert [m.value for m in logged] == pytest.approx([v for _, v in result.history["train_loss"]])
    assert len(calls) == 1 and calls[0] == sum(len(v) for v in result.history.values())  # one call for the whole (short) run


def test_a_map_style_dataset_trains_like_the_same_tensors() -> None:
    class Rows(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
        def __len__(self) -> int:
            return len(Y)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return DATA[0][i], DATA[1][i]

    a = Trainer(config(epochs=1)).fit(net(), DATA)
    b = Trainer(config(epochs=1)).fit(net(), Rows())
    assert a.curve() == b.curve()


KILLED_RUN = """
import sys, time
import torch
from torch.nn import functional
sys.path.insert(0, {root!r})
from tests.training.test_torch_trainer import DATA, VALID, config, net
from mloop.training import Trainer
from pathlib import Path

def slow_loss(out, target):
    time.sleep(0.02)  # slow enough for the test to kill it mid-run
    return functional.cross_entropy(out, target)

Trainer(config(Path({folder!r})), loss=slow_loss).fit(net(), DATA, VALID)
print("finished")
"""


@pytest.mark.slow
def test_a_killed_training_process_resumes_from_its_last_checkpoint_exactly(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    root = str(Path(__file__).resolve().parents[2])
    folder = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN.format(root=root, folder=str(folder))], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(int(p.stem.split("-")[1]) >= 14 for p in checkpoints(folder)):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = [int(p.stem.split("-")[1]) for p in checkpoints(folder)]
    assert saved and saved[-1] < 72, "killed mid-run, before the last step"
    resumed = Trainer(config(folder)).fit(net(), DATA, VALID)
    whole = Trainer(config(tmp_path / "whole")).fit(net(), DATA, VALID)
    assert resumed.resumed_from == saved[-1]
    assert resumed.curve() == whole.curve() and resumed.history["valid_loss"] == whole.history["valid_loss"]
    probe = tensors(X[:50], Y[:50])
    assert evaluate(net_from(folder), probe)["loss"] == evaluate(net_from(tmp_path / "whole"), probe)["loss"]


def net_from(folder: Path) -> torch.nn.Module:
    """The weights of the newest checkpoint in ``folder``."""
    from mloop.training._checkpoint import load_checkpoint

    model = net()
    model.load_state_dict(load_checkpoint(checkpoints(folder)[-1])["model"])
    return model
