"""The tune step: an Optuna study over a training callable's parameters, its trials in parallel worker processes.

The study lives in the workspace as an Optuna journal file (``JournalFileBackend``: appends under a file lock), not
in SQLite: several processes writing one SQLite study fail with "database is locked" (optuna#820), a journal does
not. Each trial fits the callable with the trial's parameters on ``folds`` cross-validation folds of the input and
reports the running mean after each fold (and after each epoch, for recipes that train in epochs and take a
``report`` callback, such as ``mloop.training:mlp``), so a pruner (median, Hyperband) can stop a poor trial early. The best
parameters are then fit on the whole input. With ``ray`` the workers are Ray tasks instead of local processes, on the
same journal file (a multi-node cluster needs the workspace on storage every node mounts).
"""

from __future__ import annotations

import inspect
import math
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mloop.pipelines._spec import Tune

MAXIMISE = {"auc", "accuracy", "r2"}


def _sampler(section: Tune, seed: int) -> Any:
    import optuna

    if section.sampler == "grid":
        return optuna.samplers.GridSampler({k: v.grid() for k, v in section.space.items()}, seed=seed)
    return {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler, "random": optuna.samplers.RandomSampler}[
        section.sampler](seed=seed)


def _pruner(section: Tune) -> Any:
    import optuna

    return {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner}[
        section.pruner]()


def _study(section: Tune, storage_path: str, name: str, seed: int) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(storage_path))
    direction: Literal["maximize", "minimize"] = "maximize" if section.metric in MAXIMISE else "minimize"
    return optuna.create_study(study_name=name, storage=storage, direction=direction, sampler=_sampler(section, seed),
                               pruner=_pruner(section), load_if_exists=True)


def _objective(section: Tune, frame: pd.DataFrame) -> Any:
    import optuna
    from sklearn.model_selection import KFold, StratifiedKFold

    from mloop.pipelines._steps import _scores, metric, trainer

    function = trainer(section.callable, "tune.callable")
    y = frame[section.target]
    splitter = StratifiedKFold(section.folds, shuffle=True, random_state=section.seed) if section.metric in ("auc", "accuracy", "log_loss",
                                                                                                           "brier") \
        else KFold(section.folds, shuffle=True, random_state=section.seed)

    reports = "report" in inspect.signature(function).parameters  # a recipe that trains in epochs (mloop.training:mlp)

    def objective(trial: optuna.Trial) -> float:
        params = {**section.params, **{k: v.suggest(trial, k) for k, v in section.space.items()}}
        values: list[float] = []
        for fold, (fit_rows, check_rows) in enumerate(splitter.split(frame, y)):
            held = frame.iloc[check_rows]
            truth, rows = held[section.target].to_numpy(dtype=float), held.drop(columns=[section.target])
            extra = {"report": _epoch_reporter(trial, section.metric, truth, rows, values, fold)} if reports else {}
            model = function(frame.iloc[fit_rows], section.target, **params, **extra)
            values.append(metric(section.metric, truth, _scores(model, rows)))
            trial.report(float(np.mean(values)), (fold + 1) * EPOCH_STEPS - 1)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(values))

    return objective


EPOCH_STEPS = 1000  # a fold's epoch reports are steps fold*1000 + k: the same step means the same point in every trial


def _epoch_reporter(trial: Any, name: str, truth: np.ndarray, rows: pd.DataFrame, done: list[float], fold: int) -> Any:
    """What an epoch-wise recipe calls after each evaluation: the metric of the model so far on the held-out fold
    (averaged with the folds already done) goes to the pruner, which may stop a poor trial mid-training."""
    import optuna

    from mloop.pipelines._steps import _scores, metric

    count = [0]

    def report(model: Any, step: int) -> None:
        value = metric(name, truth, _scores(model, rows))
        trial.report(float(np.mean([*done, value])), fold * EPOCH_STEPS + min(count[0], EPOCH_STEPS - 2))
        count[0] += 1
        if trial.should_prune():
            raise optuna.TrialPruned()

    return report


def _worker(section_data: dict[str, Any], storage_path: str, name: str, input_path: str, trials: int, seed: int) -> int:
    """In a worker process: run ``trials`` trials of the shared study."""
    section = Tune.model_validate(section_data)
    frame = pd.read_parquet(input_path)
    study = _study(section, storage_path, name, seed)
    study.optimize(_objective(section, frame), n_trials=trials, catch=(ValueError,))
    return trials


def tune(section: Tune, frame: pd.DataFrame, folder: Path, name: str, where: str,
         ray: str | None = None) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Run the study (``section.jobs`` processes sharing it, or as many Ray tasks with ``ray``: ``auto`` or a cluster's
    address); returns the best parameters, their value, every trial."""
    import sys

    from mloop.files import replacing

    folder.mkdir(parents=True, exist_ok=True)
    storage_path = str(folder / f"{name}.journal")
    Path(storage_path).unlink(missing_ok=True)  # a step run again (--no-cache) starts its study afresh
    input_path = folder / f"{name}.input.parquet"
    with replacing(input_path) as tmp:
        frame.to_parquet(tmp, index=False)
    jobs = min(section.jobs, section.trials)
    shares = [section.trials // jobs + (1 if i < section.trials % jobs else 0) for i in range(jobs)]
    _study(section, storage_path, name, section.seed)  # created once, before the workers load it
    paths = [p for p in sys.path if p]  # the pipeline's folder, so that the workers import its code too
    if ray is not None:
        from mloop.pipelines._ray import run_tasks

        run_tasks(ray, _ray_worker, [(paths, section.model_dump(), storage_path, name, str(input_path), share, section.seed + i)
                                     for i, share in enumerate(shares)])
    elif jobs == 1:
        _worker(section.model_dump(), storage_path, name, str(input_path), shares[0], section.seed)
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_paths, initargs=(paths,)) as pool:
            for future in [pool.submit(_worker, section.model_dump(), storage_path, name, str(input_path), share, section.seed + i)
                           for i, share in enumerate(shares)]:
                future.result()
    study = _study(section, storage_path, name, section.seed)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not done:
        raise ValueError(f"{where}: no trial completed ({len(study.trials)} tried); check the space and the callable")
    trials = [{"number": t.number, "state": t.state.name, "value": t.value if t.value is not None else math.nan, "params": t.params}
              for t in study.trials]
    return dict(study.best_params), float(study.best_value), trials


def _ray_worker(paths: list[str], section_data: dict[str, Any], storage_path: str, name: str, input_path: str, trials: int,
               seed: int) -> int:
    """In a Ray task: the pipeline's folder on ``sys.path``, then the trials of a local worker."""
    _paths(paths)
    return _worker(section_data, storage_path, name, input_path, trials, seed)


def _paths(paths: list[str]) -> None:
    import sys

    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
