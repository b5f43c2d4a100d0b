"""One step's work, given its loaded inputs: the dispatch from a step's kind to what does it, shared by the runner
(inputs from the content-addressed store, outputs tracked and cached) and a pipeline run as the loop's retraining
recipe (inputs in memory, nothing tracked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mloop.pipelines import _steps
from mloop.pipelines._spec import Call, Deploy, Evaluate, Features, Ingest, Register, Split, Step, Train, Tune, Validate


def execute(step: Step, loaded: dict[str, Any], root: Path, *, studies: Path, study: str, ray: str | None = None,
            features: Any = None) -> _steps.Done:
    """Do ``step``'s work on ``loaded`` (input field → value); ``root`` is the pipeline's folder, ``studies`` where a
    tune step keeps its Optuna study (named ``study``), ``ray`` where its trials run, ``features`` the snapshot of
    feature definitions a feature-store ingest joins through."""
    section, where = step.section, f"{step.name}.{step.kind}"
    if isinstance(section, Ingest) and section.entities is not None:
        from mloop.pipelines import _feature_ingest

        return _feature_ingest.ingest(section, root, features, where)
    if isinstance(section, Ingest):
        return _steps.ingest(section, root, where)
    if isinstance(section, Validate):
        return _steps.validate(section, loaded["input"], loaded.get("reference"), where)
    if isinstance(section, Call):
        return _steps.call(section, loaded["input"], where)
    if isinstance(section, Features):
        from mloop.pipelines import _features

        transform, table, record = _features.fit(section, loaded["input"], where)
        example = loaded["input"].drop(columns=[section.target]).head(5)  # the raw columns a composed model takes
        return _steps.Done({"table": table, "transform": {"transform": transform, "example": example}}, params=record)
    if isinstance(section, Split):
        return _steps.split(section, loaded["input"])
    if isinstance(section, Train):
        done = _steps.train(section, loaded["input"], where)
        done.outputs["example"], done.outputs["labels"] = _background(loaded["input"], section.target)
        return composed(done, loaded)
    if isinstance(section, Tune):
        from mloop.pipelines._tune import tune

        frame = loaded["input"]
        best, value, trials = tune(section, frame, studies, study, where, ray=ray)
        model = _steps.trainer(section.callable, f"{where}.callable")(frame, section.target, **{**section.params, **best})
        example, labels = _background(frame, section.target)
        done = _steps.Done({"model": model, "best": {"params": best, "value": value, "metric": section.metric},
                            "example": example, "labels": labels},
                           params={**{f"best.{k}": v for k, v in best.items()}, "trials": section.trials, "jobs": section.jobs,
                                   "sampler": section.sampler, "pruner": section.pruner},
                           metrics={f"best_{section.metric}": value})
        done.children = trials
        return composed(done, loaded)
    if isinstance(section, Evaluate):
        return _steps.evaluate(section, loaded["model"], loaded["input"], where)
    if isinstance(section, Deploy):  # registering and deploying touch the registry and the store: the runner does it
        return _steps.Done({"version": loaded["version"]})
    assert isinstance(section, Register)
    return _steps.Done({"model": loaded["model"]})


def _background(frame: Any, target: str) -> tuple[Any, Any]:
    """Up to 500 training rows and their labels: the model's example, and the background its card explains it on."""
    sample = frame.sample(min(500, len(frame)), random_state=0) if len(frame) > 500 else frame
    return sample.drop(columns=[target]), sample[target]


def composed(done: _steps.Done, loaded: dict[str, Any]) -> _steps.Done:
    """With a features transform, the model is the transform then the estimator, and its example the raw columns the
    transform takes (the model's signature)."""
    features = loaded.get("features")
    if features is None:
        return done
    from mloop.pipelines import _features

    done.outputs["model"] = _features.compose(features["transform"], done.outputs["model"])
    done.outputs["example"] = features["example"]
    done.outputs.pop("labels", None)  # the example is the raw columns now, not the rows the labels belong to
    return done
