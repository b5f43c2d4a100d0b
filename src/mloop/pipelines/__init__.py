"""Pipelines: a declarative DAG of steps (ingest, validate, call, features, split, train, tune, evaluate, register,
deploy), validated before anything runs, with every step a nested MLflow run and a content-addressed cache that skips
what has not changed; batch scoring of files of any size; reproduction of a run from its lineage. Names load lazily,
so a rerun that reuses every step imports neither pandas nor the steps' code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

if TYPE_CHECKING:
    from mloop.pipelines._cache import code_hash
    from mloop.pipelines._runner import PipelineRun, Runner, StepResult
    from mloop.pipelines._score import ScoreResult, score_file
    from mloop.pipelines._source import Pipeline
    from mloop.pipelines._spec import KINDS, PipelineSpec, Step

_WHERE: dict[str, str] = {
    "code_hash": "_cache", **{n: "_runner" for n in ("PipelineRun", "Runner", "StepResult")}, **{n: "_score" for n in ("ScoreResult", "score_file")},
    "Pipeline": "_source", **{n: "_spec" for n in ("KINDS", "PipelineSpec", "Step")},
}

__all__ = ["KINDS", "Pipeline", "PipelineRun", "PipelineSpec", "Runner", "ScoreResult", "Step", "StepResult", "code_hash", "score_file"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
