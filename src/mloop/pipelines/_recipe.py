"""A pipeline as the closed loop's retraining recipe: the loop's labelled window takes the place of one table in the
pipeline (``input``, e.g. ``split.train``), and the steps the model step needs from there on — validation, features,
train or tune — run in memory on it; the fitted model is the recipe's result. Nothing is tracked or cached here: the
loop records the attempt, judges the model at its gate and registers it. A validate step that fails fails the attempt,
so the loop does not retrain on data its pipeline would refuse."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pandas as pd

from mloop.errors import InvalidInput
from mloop.pipelines._dag import graph, resolve
from mloop.pipelines._source import Pipeline


@dataclass(frozen=True)
class Plan:
    """What runs: the pipeline, the table the window replaces (step, output), the model step, the steps in order."""

    pipeline: Pipeline
    replaced: tuple[str, str]
    model: str
    order: list[str]

    @property
    def target(self) -> str:
        from mloop.pipelines._spec import Train, Tune

        section = self.pipeline.spec.step(self.model).section
        assert isinstance(section, Train | Tune)  # plan() picks a train or tune step
        return section.target


def plan(pipeline: str | Path, input: str, model: str | None = None, overrides: list[str] | None = None) -> Plan:
    """The steps between the replaced table and the model, checked: ``input`` names a table, the model step (given,
    or the one train or tune step) depends on it, and nothing it needs comes from the replaced step's other outputs."""
    loaded = Pipeline.load(pipeline, overrides or [], steps=())  # the steps that run are known below
    spec = loaded.spec
    found = resolve(spec, input)
    if found is None or found[2] != "table":
        tables = [f"{s.name}.{o}" for s in spec.steps for o, t in _outputs(s.kind).items() if t == "table"]
        raise InvalidInput(f"recipe.input: {input!r} is not a table the pipeline makes; tables: {', '.join(tables)}.", field="recipe.input")
    models = [s.name for s in spec.steps if s.kind in ("train", "tune")]
    if model is None:
        if len(models) != 1:
            raise InvalidInput(f"recipe.model: the pipeline has {len(models)} train or tune steps ({', '.join(models) or 'none'}); name one.",
                               field="recipe.model")
        model = models[0]
    if model not in models:
        raise InvalidInput(f"recipe.model: {model!r} is not a train or tune step of the pipeline; they are: {', '.join(models)}.", field="recipe.model")
    needs = graph(spec)
    wanted: set[str] = set()
    stack = [model]
    while stack:
        name = stack.pop()
        if name in wanted or name == found[0]:
            continue
        wanted.add(name)
        stack.extend(needs[name])
    if not _reaches(needs, model, found[0]):
        raise InvalidInput(f"recipe.input: the model step {model!r} does not depend on {input!r}, so it would not learn from the loop's rows.",
                           field="recipe.input")
    for name in wanted:
        for field, ref in spec.step(name).inputs().items():
            r = resolve(spec, ref)
            if r is not None and r[0] == found[0] and r[1] != found[1] and not field.startswith("after["):
                raise InvalidInput(f"recipe.input: step {name!r} also needs {ref!r}, which the loop's rows cannot stand for; "
                                   f"replace a table after {found[0]!r} instead.", field="recipe.input")
    order = [n for n in TopologicalSorter({n: needs[n] & wanted for n in wanted}).static_order()]
    loaded = Pipeline.load(pipeline, overrides or [], steps=set(order))  # the files and code of the steps that run, checked
    return Plan(loaded, (found[0], found[1]), model, order)


def _outputs(kind: str) -> dict[str, str]:
    from mloop.pipelines._spec import KINDS

    return KINDS[kind][2]


def _reaches(needs: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            stack.extend(needs[name])
    return False


def fit(frame: pd.DataFrame, target: str, *, pipeline: str, input: str, model: str | None = None, set: list[str] | None = None) -> Any:
    """The recipe: ``frame`` (features and ``target``) as the pipeline's ``input`` table, the steps up to the model run
    on it, the fitted model returned (the label renamed to the model step's target first)."""
    from mloop.pipelines._execute import execute

    found = plan(pipeline, input, model, set)
    if target != found.target:
        frame = frame.rename(columns={target: found.target})
    values: dict[tuple[str, str], Any] = {found.replaced: frame}
    spec = found.pipeline.spec
    with found.pipeline.importable(), tempfile.TemporaryDirectory(prefix="mloop-recipe-") as studies:
        for name in found.order:
            step = spec.step(name)
            loaded = {f: values[(r[0], r[1])] for f, ref in step.inputs().items() if not f.startswith("after[") and (r := resolve(spec, ref))}
            done = execute(step, loaded, found.pipeline.root, studies=Path(studies), study=name)
            if done.stop is not None:
                raise InvalidInput(f"the pipeline recipe stopped: {done.stop}", field=f"recipe.{name}")
            values.update({(name, o): v for o, v in done.outputs.items()})
    return values[(found.model, "model")]
