"""Running a pipeline: its steps in DAG order, independent ones in parallel threads, each skipped when its cache key
(code, parameters, inputs' content) matches an earlier successful run; every step that runs is a nested MLflow run
under the pipeline's run. MLflow is written from the calling thread only; the steps' work runs in the pool."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from importlib import metadata
from typing import TYPE_CHECKING, Any

from mloop.pipelines._cache import Artifacts, FileFingerprints, StepCache, code_hash, digest_of
from mloop.pipelines._dag import graph, resolve
from mloop.pipelines._source import Pipeline
from mloop.pipelines._spec import KINDS, Call, Deploy, Features, Ingest, PipelineSpec, Register, Step, Train, Tune
from mloop.workspace import Workspace

if TYPE_CHECKING:  # the steps' own code (pandas, NumPy) is imported only when a step runs, not for a rerun that reuses all
    from mloop.features import FeatureRegistry
    from mloop.features._lineage import FeatureSnapshot
    from mloop.pipelines import _steps

log = logging.getLogger("mloop.pipelines")


@dataclass
class StepResult:
    """How one step ended: ``ran``, ``cached`` (skipped, its outputs reused), ``failed``, ``gate_failed`` or ``skipped``
    (a step it needs did not succeed)."""

    name: str
    status: str
    seconds: float = 0.0
    run_id: str | None = None
    key: str | None = None
    reason: str = ""


@dataclass
class PipelineRun:
    run_id: str  # the pipeline's MLflow run; when every step was reused, the run that made the newest of their outputs
    steps: list[StepResult] = field(default_factory=list)
    hashed_bytes: int = 0
    reused: bool = False  # nothing ran, and no run was recorded

    @property
    def ok(self) -> bool:
        return all(s.status in ("ran", "cached") for s in self.steps)


class Runner:
    """Runs pipelines in one workspace; ``jobs`` steps at most at once. A feature-store ingest joins through the
    workspace's feature definitions, or ``features`` (a :class:`~mloop.features._lineage.FeatureSnapshot` of given
    versions, say)."""

    def __init__(self, workspace: Workspace, *, jobs: int = 2, use_cache: bool = True,
                 on_step: Callable[[StepResult], None] | None = None, ray: str | None = None, features: FeatureRegistry | None = None) -> None:
        self.ws = workspace
        self.features = features
        self._pinned: dict[str, FeatureSnapshot] = {}  # feature-store ingest step → the definitions its key and join use
        self.ray = ray  # tune steps' trials as Ray tasks: "auto" or a cluster's address
        self.jobs = max(1, jobs)
        self.use_cache = use_cache
        self.on_step = on_step
        folder = workspace.root / "pipelines"
        self.artifacts = Artifacts(folder / "artifacts")
        self.cache = StepCache(folder / "cache")
        self.files = FileFingerprints(folder / "file-fingerprints.json")
        self._parts: dict[str, dict[str, Any]] = {}  # step → what its cache key was made of (recorded for reproduction)

    def run(self, pipeline: Pipeline) -> PipelineRun:
        """Run what has changed; when nothing has, no MLflow run is made (and MLflow is not even loaded): the result
        names the pipeline run that made the newest of the reused outputs. Either way the pipeline document is
        rewritten."""
        result = self._run_or_reuse(pipeline)
        self._document(pipeline, result)
        return result

    def _document(self, pipeline: Pipeline, result: PipelineRun) -> None:
        try:
            from mloop.documents import DocumentStore, pipeline_document

            spec = pipeline.spec
            steps = [{"name": s.name, "kind": spec.step(s.name).kind, "inputs": sorted(spec.step(s.name).inputs().values()),
                      "outputs": [], "cached": s.status == "cached", "seconds": s.seconds} for s in result.steps]
            DocumentStore(self.ws.docs_dir).write(pipeline_document({
                "name": spec.name, "file": str(pipeline.path or "<in memory>"), "run_id": result.run_id, "steps": steps,
                "schedule": getattr(spec, "schedule", None),
            }))
        except Exception as exc:  # noqa: BLE001 - the run stands; its document is documentation
            log.warning("no pipeline document for %s: %s", pipeline.spec.name, exc)

    def _run_or_reuse(self, pipeline: Pipeline) -> PipelineRun:
        reused = self._reused(pipeline)
        if reused is None:
            pipeline.check_code()  # steps will run: their code must import (a cache hit proved it did, for the same code)
            if any((isinstance(s.section, Ingest) and s.section.entities is not None)
                   or (isinstance(s.section, Deploy) and s.section.feature_service is not None) for s in pipeline.spec.steps):
                pipeline.check_features(self._definitions())
        if reused is not None:
            results = [StepResult(s.name, "cached", run_id=reused[s.name].get("run_id"), key=reused[s.name]["key"]) for s in pipeline.spec.steps]
            for result in results:
                if self.on_step is not None:
                    self.on_step(result)
            self.files.save()
            newest = max(reused.values(), key=lambda e: float(e.get("at", 0.0)))
            return PipelineRun(str(newest.get("pipeline_run", "")), results, self.files.read_bytes, reused=True)
        return self._run(pipeline)

    def _reused(self, pipeline: Pipeline) -> dict[str, dict[str, Any]] | None:
        """Every step's cache entry when each one's key is found (in DAG order), else None."""
        if not self.use_cache or not all(s.cache for s in pipeline.spec.steps):
            return None
        entries: dict[str, dict[str, Any]] = {}
        with pipeline.importable():
            for name in TopologicalSorter(graph(pipeline.spec)).static_order():
                try:
                    key = self._key(pipeline, pipeline.spec.step(name), entries)
                except Exception:  # a file gone, say: the full run reports it on its step
                    return None
                cached = self.cache.get(key)
                if cached is None:
                    return None
                entries[name] = {**cached, "key": key}
        return entries

    def _run(self, pipeline: Pipeline) -> PipelineRun:
        spec = pipeline.spec
        self._name, self._spec = spec.name, spec
        needs = graph(spec)
        sorter = TopologicalSorter(needs)
        sorter.prepare()
        entries: dict[str, dict[str, Any]] = {}  # step → its cache entry (outputs, run id)
        results: dict[str, StepResult] = {}
        tags = {"mloop.pipeline": spec.name, "mloop.pipeline.file": str(pipeline.path or "")}
        with pipeline.importable(), self.ws.tracker.start_run(f"pipeline-{spec.name}", run_name=spec.name, tags=tags, code_dir=pipeline.root) as parent, \
                ThreadPoolExecutor(self.jobs, thread_name_prefix="mloop-step") as pool:
            self._parent_id = parent.run_id
            running: dict[Future[_steps.Done], tuple[Step, str, float]] = {}
            while sorter.is_active():
                ready: list[str] = []
                while True:  # a cached, skipped or failed step frees what follows it now, not after the next wait
                    ready.extend(sorter.get_ready())
                    if not ready:
                        break
                    name = ready.pop(0)
                    step = spec.step(name)
                    blocked = [n for n in needs[name] if results[n].status not in ("ran", "cached")]
                    if blocked:
                        self._finish(results, StepResult(name, "skipped", reason=f"needs {', '.join(blocked)}, which did not succeed"))
                        sorter.done(name)
                        continue
                    try:
                        key = self._key(pipeline, step, entries)
                    except Exception as exc:
                        self._finish(results, StepResult(name, "failed", reason=f"{type(exc).__name__}: {exc}"))
                        sorter.done(name)
                        continue
                    cached = self.cache.get(key) if self.use_cache and step.cache else None
                    if cached is not None:
                        entries[name] = cached
                        self._finish(results, StepResult(name, "cached", run_id=cached.get("run_id"), key=key))
                        sorter.done(name)
                        continue
                    inputs = {f: entries[ref[0]]["outputs"][ref[1]] for f, r in step.inputs().items()
                              if not f.startswith("after[") and (ref := resolve(spec, r)) is not None}
                    running[pool.submit(self._work, pipeline, step, inputs, key)] = (step, key, time.perf_counter())
                if not running:
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    step, key, began = running.pop(future)
                    result = self._record(parent, step, key, future, entries, 0.0)
                    result.seconds = time.perf_counter() - began  # the work and its recording (a registration, a logged model)
                    self._finish(results, result)
                    sorter.done(step.name)
            ordered = [results[s.name] for s in spec.steps]
            self._lineage(parent, pipeline, results, entries)
            parent.set_tags({"mloop.pipeline.cached": ",".join(r.name for r in ordered if r.status == "cached"),
                             "mloop.pipeline.ok": str(all(r.status in ("ran", "cached") for r in ordered)).lower()})
            run_id = parent.run_id
        self.files.save()
        return PipelineRun(run_id, ordered, self.files.read_bytes)

    def _definitions(self) -> FeatureSnapshot:
        """The feature definitions a feature-store ingest joins through, read now (or the snapshot given)."""
        from mloop.features._lineage import FeatureSnapshot, snapshot

        return snapshot(self.features) if self.features is not None else FeatureSnapshot(self.ws.store)

    def _feature_lineage(self, spec: PipelineSpec, names: set[str], entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The feature views recorded by the feature-store ingests among ``names`` and every step they need."""
        needs, seen, todo = graph(spec), set(), list(names)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(needs[name])
        return [entries[n]["feature_lineage"] for n in sorted(seen) if entries.get(n, {}).get("feature_lineage")]

    def _lineage(self, parent: Any, pipeline: Pipeline, results: dict[str, StepResult], entries: dict[str, dict[str, Any]]) -> None:
        """What ``mloop reproduce`` needs on the pipeline's run: the spec as run (overrides applied) and where its code
        lives, and per step the run that made its outputs, the hashes of its code, file and inputs, and of its outputs;
        and the feature views every feature-store ingest that ran or was reused joined."""
        made = {n for n, r in results.items() if r.status in ("ran", "cached")}
        for used in self._feature_lineage(pipeline.spec, made, entries):
            parent.log_feature_views(used["views"], service=used["service"])
        parent.log_dict({"spec": pipeline.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
                         "file": str(pipeline.path or ""), "root": str(pipeline.root)}, "pipeline/pipeline.json")
        steps = {}
        for name, result in results.items():
            parts = self._parts.get(name, {})
            outputs = entries.get(name, {}).get("outputs", {}) if result.status in ("ran", "cached", "gate_failed") else {}
            steps[name] = {"status": result.status, "reason": result.reason, "run_id": result.run_id, "key": result.key,
                           "code": parts.get("code"), "transformers": parts.get("transformers"), "libraries": parts.get("mloop"),
                           "file": parts.get("file"), "inputs": parts.get("inputs", {}),
                           "outputs": {o: ref["sha256"] for o, ref in outputs.items()}}
        parent.log_dict(steps, "pipeline/steps.json")

    def _finish(self, results: dict[str, StepResult], result: StepResult) -> None:
        results[result.name] = result
        if self.on_step is not None:
            self.on_step(result)

    def _key(self, pipeline: Pipeline, step: Step, entries: dict[str, dict[str, Any]]) -> str:
        """The step's cache key: its kind and section, its code, and the content hashes of its inputs."""
        section = step.section
        parts: dict[str, Any] = {"kind": step.kind, "section": section.model_dump()}
        if isinstance(section, Ingest) and section.path is not None:
            parts["file"] = self.files.sha256(pipeline.root / section.path)
        if isinstance(section, Ingest) and section.entities is not None:  # the entity rows, the views' versions and their data
            from mloop.pipelines._feature_ingest import data_hash

            self._pinned[step.name] = pinned = self._definitions()
            parts["file"] = data_hash(section, pipeline.root, pinned, self.files)
        if isinstance(section, Call | Train | Tune) or (isinstance(section, Ingest) and section.callable is not None):
            parts["code"] = code_hash(str(section.callable), pipeline.root)  # from the files: nothing imported
        else:  # mloop's own step code, and the libraries it runs on
            parts["mloop"] = {p: metadata.version(p) for p in ("mloop", "scikit-learn", "pandera", "scipy")}
        if isinstance(section, Features):
            parts["transformers"] = [code_hash(t.callable, pipeline.root) for t in section.transformers]
        # A registration depends on the model, not on what its gates said (they only decide whether it runs).
        refs = {"model": step.inputs()["model"]} if isinstance(section, Register) else \
            {"version": step.inputs()["version"]} if isinstance(section, Deploy) else step.inputs()
        parts["inputs"] = {f: entries[r[0]]["outputs"][r[1]]["sha256"] for f, ref in refs.items()
                           if (r := resolve(pipeline.spec, ref)) is not None}
        if isinstance(section, Register):
            parts["section"] = {"name": section.name, "alias": section.alias}
        self._parts[step.name] = parts
        return digest_of(parts)

    def _work(self, pipeline: Pipeline, step: Step, inputs: dict[str, dict[str, str]], key: str) -> _steps.Done:
        """In a pool thread: load the inputs, do the step's work."""
        loaded = {f: Artifacts.get(ref) for f, ref in inputs.items()}
        study = f"{pipeline.spec.name}-{step.name}-{key[:12]}"
        from mloop.pipelines._execute import execute

        return execute(step, loaded, pipeline.root, studies=self.ws.root / "pipelines" / "studies", study=study, ray=self.ray,
                       features=self._pinned.get(step.name))

    def _record(self, parent: Any, step: Step, key: str, future: Future[_steps.Done], entries: dict[str, dict[str, Any]],
                seconds: float) -> StepResult:
        """In the calling thread: the step's nested run (parameters, metrics, a model logged or registered), its outputs
        stored by content, and its cache entry — written only when it succeeded."""
        tags = {"mloop.pipeline.step": step.name, "mloop.pipeline.kind": step.kind, "mloop.pipeline.cache_key": key}
        with self.ws.tracker.start_run(f"pipeline-{self._name}", run_name=step.name, tags=tags, parent=parent) as run:
            try:
                return self._store(run, step, key, future.result(), entries, seconds)
            except Exception as exc:  # the step's work, or recording it (a model that cannot be logged): the step fails alone
                run.set_tags({"mloop.pipeline.error": f"{type(exc).__name__}: {exc}"[:500]})
                return StepResult(step.name, "failed", seconds, run.run_id, key, f"{type(exc).__name__}: {exc}")

    def _store(self, run: Any, step: Step, key: str, done: _steps.Done, entries: dict[str, dict[str, Any]], seconds: float) -> StepResult:
        """The step's parameters and metrics, its model logged or registered, its outputs stored and its cache entry."""
        if done.params:
            run.log_params({k: (str(v)[:500]) for k, v in done.params.items()})
        if done.metrics:
            run.log_metrics({k: v for k, v in done.metrics.items() if v == v})
        outputs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for trial in done.children:  # each trial a nested run of the tune step's
            with self.ws.tracker.start_run(f"pipeline-{self._name}", run_name=f"{step.name}-trial-{trial['number']}", parent=run,
                                           tags={"mloop.pipeline.trial": str(trial["number"]), "mloop.pipeline.trial_state": trial["state"]}) as child:
                child.log_params({k: str(v)[:500] for k, v in trial["params"].items()})
                if trial["value"] == trial["value"]:
                    child.log_metrics({str(getattr(step.section, "metric", "value")): float(trial["value"])})
        if done.feature_lineage:  # a feature-store ingest: its run, and (through the cache entry) the runs that use its table
            run.log_feature_views(done.feature_lineage["views"], service=done.feature_lineage["service"])
            extra["feature_lineage"] = done.feature_lineage
        if isinstance(step.section, Train | Tune):
            for used in self._feature_lineage(self._spec, {step.name}, entries):  # the model carries them into its card
                run.log_feature_views(used["views"], service=used["service"])
            # The signature is the model's inputs, not every column the step was given.
            from mloop.pipelines._steps import model_inputs

            example = model_inputs(done.outputs["model"], done.outputs.pop("example"))
            labels = done.outputs.pop("labels", None)
            extra["uri"] = run.log_sklearn_model(done.outputs["model"], example, labels=labels if labels is not None and len(labels) == len(example) else None)
        if isinstance(step.section, Register):
            model_ref = step.inputs()["model"]
            train_entry = entries[model_ref.partition(".")[0]]
            version = self.ws.registry.register(train_entry["uri"], step.section.name, alias=step.section.alias).version
            done.outputs = {"version": {"name": step.section.name, "version": version}}
            run.log_params({"model": step.section.name, "version": version, "alias": step.section.alias or ""})
        if isinstance(step.section, Deploy):
            from mloop.pipelines._deploy import deploy

            done.outputs = {"deployment": deploy(self.ws, step.section, done.outputs["version"], f"{step.name}.deploy")}
            run.log_params({k: v for k, v in done.outputs["deployment"].items()})
        for name, value in done.outputs.items():
            kind = KINDS[step.kind][2][name]  # what the kind declares it makes; a version is stored as metrics are
            outputs[name] = self.artifacts.put("metrics" if kind == "version" else kind, value)
            if kind == "table":
                run.log_dataset(value, context=name, name=f"{step.name}.{name}")
        entry = {"outputs": outputs, "run_id": run.run_id, "pipeline_run": self._parent_id, "at": time.time(), **extra}
        entries[step.name] = entry
        if done.stop is not None:
            run.set_tags({"mloop.pipeline.stopped": done.stop[:500]})
            return StepResult(step.name, "gate_failed", seconds, run.run_id, key, done.stop)
        self.cache.put(key, entry)
        return StepResult(step.name, "ran", seconds, run.run_id, key)

