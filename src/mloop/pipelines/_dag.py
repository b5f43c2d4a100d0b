"""The pipeline's DAG: which step feeds which, checked before anything runs — every reference names a step and one of
its outputs, of the type the field takes, and the steps form no cycle."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Any

from mloop.pipelines._spec import KINDS, PipelineSpec


def resolve(spec: PipelineSpec, ref: str) -> tuple[str, str, str] | None:
    """``step`` or ``step.output`` → (step, output, its type), or None when it names nothing."""
    name, _, output = ref.partition(".")
    step = next((s for s in spec.steps if s.name == name), None)
    if step is None:
        return None
    outputs = KINDS[step.kind][2]
    output = output or next(iter(outputs))
    return (name, output, outputs[output]) if output in outputs else None


def _offered(spec: PipelineSpec, kind: str) -> list[str]:
    return [f"{s.name}.{o}" if len(KINDS[s.kind][2]) > 1 else s.name for s in spec.steps for o, t in KINDS[s.kind][2].items()
            if kind in ("any", t)]


def graph(spec: PipelineSpec) -> dict[str, set[str]]:
    """Each step → the steps it needs (its inputs' and its ``after``)."""
    needs: dict[str, set[str]] = {}
    for step in spec.steps:
        needs[step.name] = {r[0] for r in (resolve(spec, ref) for ref in step.inputs().values()) if r is not None}
    return needs


def check_dag(spec: PipelineSpec) -> tuple[list[Any], str] | None:
    """The first problem as (its location in the document, a message with a hint), or None."""
    for index, step in enumerate(spec.steps):
        expected = KINDS[step.kind][1]
        for field, ref in step.inputs().items():
            want = expected.get(field, "any")
            where: list[Any] = ["steps", index, step.kind, *(["after", int(field[6:-1])] if field.startswith("after[") else [field])]
            found = resolve(spec, ref)
            if found is None:
                offered = _offered(spec, want)
                return where, (f"steps[{index}] ({step.name}).{step.kind}.{field}: no step output {ref!r}. Hint: "
                               + (f"outputs of type {want}: {', '.join(offered)}." if offered else f"no step makes a {want}."))
            if found[0] == step.name:
                return where, f"steps[{index}] ({step.name}).{step.kind}.{field}: a step cannot take its own output {ref!r}."
            if want != "any" and found[2] != want:
                offered = _offered(spec, want)
                return where, (f"steps[{index}] ({step.name}).{step.kind}.{field}: {ref!r} is a {found[2]}, but {field} takes a {want}. "
                               f"Hint: " + (f"outputs of type {want}: {', '.join(offered)}." if offered else f"no step makes a {want}."))
        refs = step.inputs()
        if "features" in refs and (resolve(spec, refs["features"]) or ("",))[0] != (resolve(spec, refs["input"]) or ("",))[0]:
            source = refs["features"].partition(".")[0]
            return (["steps", index, step.kind, "features"],
                    f"steps[{index}] ({step.name}).{step.kind}.features: the model is trained on {refs['input']!r} but would serve through "
                    f"{refs['features']!r}, which was fit on another table. Hint: set input to {source}.table.")
        section = step.section
        if step.kind == "deploy" and (found := resolve(spec, refs["version"])) is not None:
            registered = spec.step(found[0]).section
            if getattr(registered, "alias", None) == getattr(section, "alias", None):
                return (["steps", index, "deploy", "version"],
                        f"steps[{index}] ({step.name}).deploy: the register step {found[0]!r} moves alias {getattr(section, 'alias', '')!r} "
                        "itself, so every deployment on it would switch at once and this deploy would find the version already served. "
                        f"Hint: leave alias out of {found[0]!r}; the deploy step moves it (a new deployment) or rolls out (an existing one).")
    try:
        tuple(TopologicalSorter(graph(spec)).static_order())
    except CycleError as exc:
        cycle = list(exc.args[1])
        index = next(i for i, s in enumerate(spec.steps) if s.name == cycle[0])
        return ["steps", index], f"steps form a cycle: {' → '.join(cycle)}. Hint: a step can only take outputs of steps that do not need it."
    return None
