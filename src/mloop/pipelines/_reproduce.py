"""``mloop reproduce RUN_ID``: a pipeline run executed again from its lineage (the spec as it ran, its folder's code,
its data, its seeds) in a scratch workspace with no cache, and each step judged against the original — every metric
exact, within a stated tolerance, or different — and, where it differs, why: the data changed, the code changed, an
input from an earlier step differs, the environment differs, or the same code, inputs and environment gave another
result (nondeterminism). The judgement (:func:`judge`) is pure; :func:`reproduce` reads and runs."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mloop.errors import InvalidInput, NotFound
from mloop.workspace import Workspace


@dataclass(frozen=True)
class MetricCheck:
    """One metric of one step: the original value, the reproduced one, and ``exact``, ``within`` or ``differs``."""

    step: str
    metric: str
    original: float
    reproduced: float | None
    verdict: str


@dataclass
class StepCheck:
    """One step: ``exact``, ``within`` (tolerance), ``differs``, ``not compared`` (a registration, a step that did not
    run either time), and why when it differs."""

    step: str
    verdict: str
    why: str = ""
    metrics: list[MetricCheck] = field(default_factory=list)


@dataclass
class Reproduction:
    """The verdict over every step: ``exact`` when every metric and output matched bit for bit, ``within`` when every
    metric matched within the tolerance, else ``differs``."""

    run_id: str
    reproduced_run_id: str
    tolerance: float
    steps: list[StepCheck]
    environment: dict[str, tuple[str, str]]  # package → (then, now), only those that differ

    @property
    def verdict(self) -> str:
        verdicts = {s.verdict for s in self.steps} - {"not compared"}
        return "differs" if "differs" in verdicts else "within" if "within" in verdicts else "exact"


def metric_verdict(original: float, reproduced: float | None, tolerance: float) -> str:
    """``exact`` (the same float, or both NaN), ``within`` (|a − b| ≤ tolerance × max(1, |a|)) or ``differs``."""
    if reproduced is None:
        return "differs"
    if original == reproduced or (math.isnan(original) and math.isnan(reproduced)):
        return "exact"
    if abs(original - reproduced) <= tolerance * max(1.0, abs(original)):
        return "within"
    return "differs"


def _outcome(status: Any) -> str:
    """A step's status as what it means for comparing: ``made`` its outputs, ``stopped`` at its gate, or ``none``."""
    return "made" if status in ("ran", "cached") else "stopped" if status == "gate_failed" else "none"


def judge(order: list[tuple[str, str]], needs: dict[str, set[str]], then: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]],
          metrics_then: dict[str, dict[str, float]], metrics_now: dict[str, dict[str, float]], environment: dict[str, dict[str, tuple[str, str]]],
          tolerance: float) -> list[StepCheck]:
    """Each step (``order``: name and kind, in DAG order) judged from what both runs recorded (``then``/``now``: a
    step's status, code and file hashes, library versions, input and output hashes) and their metrics; ``environment``
    is, per step, the packages that differ between the run that made its outputs and now. A step that ended otherwise
    (made its outputs, stopped at its gate, failed) differs; one that ended the same way is judged by its metrics, or
    by its outputs' hashes when it has none; a registration or deployment that ended the same way is not compared.
    The cause of a difference is the first of: its file, its code, an input (naming the step it came from), the
    environment, else nondeterminism."""
    checks: list[StepCheck] = []
    for name, kind in order:
        a, b = then.get(name, {}), now.get(name, {})
        was, is_ = _outcome(a.get("status")), _outcome(b.get("status"))
        if was != is_:
            reason = f": {b.get('reason')}" if b.get("reason") else ""
            checks.append(StepCheck(name, "differs", f"it {a.get('status', 'did not run')} then and {b.get('status', 'did not run')} now{reason}"))
            continue
        if kind in ("register", "deploy") or was == "none":
            why = f"a {'registration' if kind == 'register' else 'deployment'}, made in the scratch workspace" if kind in ("register", "deploy") else \
                f"it {a.get('status', 'did not run')} in the original run and {b.get('status', 'did not run')} now"
            checks.append(StepCheck(name, "not compared", why))
            continue
        found = [MetricCheck(name, m, v, metrics_now.get(name, {}).get(m), metric_verdict(v, metrics_now.get(name, {}).get(m), tolerance))
                 for m, v in sorted(metrics_then.get(name, {}).items())]
        same_outputs = a.get("outputs") == b.get("outputs")
        if found:
            verdicts = {m.verdict for m in found}
            verdict = "differs" if "differs" in verdicts else "within" if "within" in verdicts else "exact" if same_outputs else "within"
        else:
            verdict = "exact" if same_outputs else "differs"
        why = "" if verdict == "exact" else _cause(name, a, b, needs, then, now, environment.get(name, {}))
        checks.append(StepCheck(name, verdict, why, found))
    return checks


def _cause(name: str, a: dict[str, Any], b: dict[str, Any], needs: dict[str, set[str]], then: dict[str, dict[str, Any]],
           now: dict[str, dict[str, Any]], environment: dict[str, tuple[str, str]]) -> str:
    if a.get("file") != b.get("file"):
        return f"data changed: the file it reads is not the one the run read (sha256 {str(a.get('file'))[:12]} then, {str(b.get('file'))[:12]} now)"
    if a.get("code") != b.get("code") or a.get("transformers") != b.get("transformers"):
        return "code changed: its callable, a transformer it names or a project module they import differs from the run's"
    changed = sorted(f for f in set(a.get("inputs", {})) | set(b.get("inputs", {})) if a.get("inputs", {}).get(f) != b.get("inputs", {}).get(f))
    if changed:
        sources = sorted(n for n in needs.get(name, set()) if then.get(n, {}).get("outputs") != now.get(n, {}).get("outputs"))
        return f"an input differs: {', '.join(changed)} (from {', '.join(sources) or 'an earlier step'}, see there)"
    if a.get("file") is None and a.get("code") is not None and not needs.get(name) and a.get("outputs") != b.get("outputs"):
        return "data changed: its callable returned a different table from the same code (the source it reads changed)"
    libraries = {p: (v, (b.get("libraries") or {}).get(p, "absent")) for p, v in (a.get("libraries") or {}).items()
                 if (b.get("libraries") or {}).get(p) != v}
    if environment or libraries:
        shown = ", ".join(f"{p} {was} → {now_}" for p, (was, now_) in sorted({**environment, **libraries}.items()))
        return f"environment differs: {shown}"
    return "nondeterminism: the same code, inputs and environment gave another result (an unseeded random source, or parallel trials)"


def _artifact(tracker: Any, run_id: str, path: str) -> dict[str, Any]:
    try:
        return dict(tracker.read_dict(run_id, path))
    except NotFound:
        raise InvalidInput(f"Run {run_id} has no {path}: it was not made by `mloop run` (or by an mloop before reproduction was "
                           "recorded). Reproduce a pipeline run: the id `mloop run` printed.", field="run_id") from None


def _pipeline_run(client: Any, run_id: str) -> Any:
    try:
        run = client.get_run(run_id)
    except Exception:
        raise NotFound(f"No run {run_id!r} in this workspace. List runs with `mloop runs list`.") from None
    parent = run.data.tags.get("mlflow.parentRunId")
    if "mloop.pipeline.step" in run.data.tags and parent:
        run = client.get_run(parent)  # a step's run: reproduce the pipeline it belongs to
    if "mloop.pipeline" not in run.data.tags:
        raise InvalidInput(f"Run {run_id} is not a pipeline run; `mloop reproduce` takes the run id `mloop run` printed.", field="run_id")
    return run


def _features_then(ws: Workspace, run_id: str) -> Any:
    """The feature definitions the run joined through — the versions it recorded, from this workspace's store (the
    scratch workspace has none) — or None when it joined none."""
    from mloop.features._lineage import FeatureSnapshot
    from mloop.tracking._tracker import FEATURES_ARTIFACT

    try:
        recorded = ws.tracker.read_dict(run_id, FEATURES_ARTIFACT)
    except NotFound:
        return None
    versions = {("view", v["name"]): int(v["version"]) for v in recorded.get("views", [])}
    versions.update({("service", s["name"]): int(s["version"]) for s in recorded.get("services", [])})
    return FeatureSnapshot(ws.store, versions)


def _metrics(client: Any, steps: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {name: dict(client.get_run(s["run_id"]).data.metrics) for name, s in steps.items() if s.get("run_id")}


def reproduce(ws: Workspace, run_id: str, *, tolerance: float = 1e-9, jobs: int = 2, keep: Path | None = None) -> Reproduction:
    """Run the pipeline of ``run_id`` again in a scratch workspace (``keep``: there, kept; else a temporary folder,
    removed) and judge it step by step; tags the original run with the verdict."""
    from mloop.pipelines._dag import graph
    from mloop.pipelines._runner import Runner
    from mloop.pipelines._source import Pipeline
    from mloop.pipelines._spec import PipelineSpec
    from mloop.tracking._lineage import environment

    if not tolerance >= 0:
        raise InvalidInput(f"--tolerance must be 0 or more, got {tolerance}.", field="tolerance")
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise InvalidInput(f"--keep {keep}: the folder is not empty; name a new one (the scratch workspace is made there, and a workspace "
                           "already there would be run in).", field="keep")
    client = ws.tracker.client
    run = _pipeline_run(client, run_id)
    recorded = _artifact(ws.tracker, run.info.run_id, "pipeline/pipeline.json")
    then = _artifact(ws.tracker, run.info.run_id, "pipeline/steps.json")
    try:
        spec = PipelineSpec.model_validate(recorded["spec"])
    except ValidationError as exc:
        raise InvalidInput(f"Run {run_id}'s pipeline no longer reads as one in this mloop ({exc.errors()[0].get('msg')}); reproduce it with "
                           "the mloop that made it (its version is the run's mloop.env.mloop tag).", field="run_id") from None
    root = Path(recorded["root"])
    if not root.is_dir():
        raise InvalidInput(f"The pipeline's folder {root} is gone: reproduction runs the code there.", field="run_id")
    pipeline = Pipeline(spec, Path(recorded["file"]) if recorded["file"] else None)
    pipeline.root = root
    env_now = environment()
    current = {"python": env_now["python"], **env_now["packages"]}

    def differ(tags: dict[str, str]) -> dict[str, tuple[str, str]]:
        was = {k.removeprefix("mloop.env."): v for k, v in tags.items() if k.startswith("mloop.env.")}
        return {p: (v, current.get(p, "absent")) for p, v in was.items() if current.get(p, "absent") != v}

    made_by = {name: client.get_run(s["run_id"]) for name, s in then.items() if s.get("run_id")}  # a cached step: the run that made it
    scratch = keep or Path(tempfile.mkdtemp(prefix="mloop-reproduce-"))
    try:
        settings = ws.settings.model_copy(update={"home": scratch, "database_url": None, "tracking_uri": None})
        other = Workspace.init(scratch, settings=settings)
        try:
            runner = Runner(other, jobs=jobs, use_cache=False, features=_features_then(ws, run.info.run_id))
            again = runner.run(pipeline)
            now = _artifact(other.tracker, again.run_id, "pipeline/steps.json")
            metrics_now = _metrics(other.tracker.client, now)
        finally:
            other.close()
    finally:
        if keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    order = [(s.name, s.kind) for s in spec.steps]
    metrics_then = {name: dict(r.data.metrics) for name, r in made_by.items()}
    environments = {name: differ(r.data.tags) for name, r in made_by.items()}
    checks = judge(order, graph(spec), then, now, metrics_then, metrics_now, environments, tolerance)
    result = Reproduction(run.info.run_id, again.run_id, tolerance, checks, differ(run.data.tags))
    client.set_tag(run.info.run_id, "mloop.reproduced", json.dumps({"verdict": result.verdict, "tolerance": tolerance}))
    return result
