"""Pipelines: a declarative DAG of steps (ingest, call, split, train, tune, evaluate, register), validated before
anything runs, with every step a nested MLflow run and a content-addressed cache that skips what has not changed; and
batch scoring of files of any size."""

from __future__ import annotations

from mloop.pipelines._cache import code_hash
from mloop.pipelines._runner import PipelineRun, Runner, StepResult
from mloop.pipelines._score import ScoreResult, score_file
from mloop.pipelines._source import Pipeline
from mloop.pipelines._spec import KINDS, PipelineSpec, Step

__all__ = ["KINDS", "Pipeline", "PipelineRun", "PipelineSpec", "Runner", "ScoreResult", "Step", "StepResult", "code_hash", "score_file"]
