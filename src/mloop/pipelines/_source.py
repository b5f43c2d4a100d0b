"""Reading a pipeline file: YAML or JSON, ``--set`` overrides, validation — and every problem named with the file,
its **line**, the field and a hint, before anything runs."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mloop.errors import InvalidInput, invalid_from
from mloop.files import line_of
from mloop.pipelines._cache import resolve_callable
from mloop.pipelines._dag import check_dag
from mloop.pipelines._spec import KINDS, PipelineSpec


class Pipeline:
    """A validated pipeline and where it came from (its folder is where relative paths and project code live)."""

    def __init__(self, spec: PipelineSpec, path: Path | None = None) -> None:
        self.spec = spec
        self.path = path
        self.root = path.parent.resolve() if path is not None else Path.cwd()
        self._node: Any = None  # the YAML tree, for the lines of errors
        self._steps: Collection[str] | None = None  # the steps whose code to check (None: all)
        self._checked = False

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = (), *, steps: Collection[str] | None = None, check_code: bool = True) -> Pipeline:
        """Read, override and check ``path``; raises :class:`InvalidInput` whose message starts ``file:line:``. The
        files and code of only ``steps`` are checked when given (the ones a retraining recipe runs); ``check_code``
        false leaves importing the steps' code to :meth:`check_code` (the runner calls it when a step will run)."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"No pipeline file at {path}.", field="file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"Cannot read the pipeline file {path}: {exc}", field="file") from None
        try:
            node = yaml.compose(text)
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise InvalidInput(f"{path}{line}: not valid YAML or JSON: {getattr(exc, 'problem', exc)}.", field="file") from None
        if not isinstance(document, dict):
            raise InvalidInput(f"{path}:1: a pipeline is a mapping with a name and steps.", field="pipeline")
        document = apply_overrides(document, overrides)
        try:
            spec = PipelineSpec.model_validate(document)
        except ValidationError as exc:
            error = invalid_from(exc, default="pipeline")
            loc = [p for p in exc.errors()[0].get("loc", ()) if not str(p).startswith("function-")]
            raise InvalidInput(f"{path}:{line_of(node, loc)}: {error.message}{_hint(error.message)}", field=error.field) from None
        problem = check_dag(spec)
        if problem is not None:
            loc, message = problem
            raise InvalidInput(f"{path}:{line_of(node, loc)}: {message}", field=".".join(str(p) for p in loc)) from None
        pipeline = cls(spec, path)
        checked = [(i, s) for i, s in enumerate(spec.steps) if steps is None or s.name in steps]
        for index, step in checked:
            for field in ("path", "entities") if step.kind == "ingest" else ():
                source = getattr(step.section, field, None)
                if source is not None and not (pipeline.root / source).is_file():
                    raise InvalidInput(f"{path}:{line_of(node, ['steps', index, step.kind, field])}: steps[{index}] ({step.name}).ingest.{field}: "
                                       f"no file at {pipeline.root / source} (relative paths are from the pipeline's folder).", field=field)
        pipeline._node, pipeline._steps = node, steps
        if check_code:
            pipeline.check_code()
        return pipeline

    def check_code(self) -> None:
        """Every step's callable (and a features step's transformers) imports and is what it should be; refused
        naming the file, the line and the field. Done once."""
        if self._checked:
            return
        path, node, spec, steps = self.path, self._node, self.spec, self._steps
        checked = [(i, s) for i, s in enumerate(spec.steps) if steps is None or s.name in steps]
        with self.importable():
            for index, step in checked:
                functions: list[tuple[list[Any], str, Any, tuple[str, ...]]] = [(["callable"], "callable", getattr(step.section, "callable", None), ())]
                functions += [(["transformers", i, "callable"], f"transformers[{i}].callable", t.callable, ("fit", "transform"))
                              for i, t in enumerate(getattr(step.section, "transformers", []))]
                for loc, name, function, needs in functions:
                    if function is None:
                        continue
                    where = f"steps[{index}] ({step.name}).{step.kind}.{name}"
                    try:
                        found = resolve_callable(str(function), where)
                        lacks = [n for n in needs if not hasattr(found, n)]
                        if lacks:
                            raise InvalidInput(f"{where}: {function} is not a transformer (it has no {' or '.join(lacks)}); name a scikit-learn "
                                               "transformer class such as sklearn.preprocessing:StandardScaler.", field=where)
                    except InvalidInput as exc:
                        line = line_of(node, ['steps', index, step.kind, *loc]) if node is not None else "?"
                        raise InvalidInput(f"{path}:{line}: {exc.message}", field=exc.field) from None
        self._checked = True

    def check_features(self, definitions: Any) -> None:
        """Every feature-store ingest's service or features, and every deploy step's feature service, resolve in
        ``definitions`` (a feature registry); refused naming the file, the line and the field, before anything runs."""
        from mloop.pipelines._feature_ingest import check
        from mloop.pipelines._spec import Deploy, Ingest

        for index, step in enumerate(self.spec.steps):
            section = step.section
            if isinstance(section, Deploy) and section.feature_service is not None and (self._steps is None or step.name in self._steps):
                services = definitions.services()
                if section.feature_service not in services:
                    line = line_of(self._node, ["steps", index, "deploy", "feature_service"]) if self._node is not None else "?"
                    raise InvalidInput(f"{self.path}:{line}: steps[{index}] ({step.name}).deploy.feature_service: no feature service "
                                       f"{section.feature_service!r}; services: {', '.join(sorted(services)) or 'none applied'}.",
                                       field="feature_service")
                continue
            if not isinstance(section, Ingest) or section.entities is None or (self._steps is not None and step.name not in self._steps):
                continue
            problem = check(section, definitions)
            if problem is not None:
                field = "service" if section.service is not None else "features"
                line = line_of(self._node, ["steps", index, "ingest", field]) if self._node is not None else "?"
                raise InvalidInput(f"{self.path}:{line}: steps[{index}] ({step.name}).ingest.{field}: {problem}", field=field)

    @contextmanager
    def importable(self) -> Iterator[None]:
        """The pipeline's folder first on ``sys.path`` while its steps' code is imported and run (its own modules)."""
        import sys

        root = str(self.root)
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)
        try:
            yield
        finally:
            if added and root in sys.path:
                sys.path.remove(root)


def _hint(message: str) -> str:
    if "Extra inputs are not permitted" in message:
        return " Hint: check its spelling; `mloop schema pipeline` prints every key a pipeline may have."
    return ""


def apply_overrides(document: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``STEP.FIELD[.SUB…]=VALUE`` (the value read as YAML) set in the step's section (``STEP.cache=false`` on the step
    itself); ``name=VALUE`` renames the pipeline. A path that names no step is refused naming it."""
    import copy

    import yaml

    document = copy.deepcopy(document)
    found = document.get("steps")
    steps: list[Any] = found if isinstance(found, list) else []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {item!r}: write STEP.FIELD=VALUE (say model.params.max_iter=300).", field="--set")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise InvalidInput(f"--set {item!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)}).", field="--set") from None
        parts = key.split(".")
        if parts == ["name"]:
            document["name"] = value
            continue
        step = next((s for s in steps if isinstance(s, dict) and s.get("name") == parts[0]), None)
        if step is None or len(parts) < 2:
            names = [s.get("name") for s in steps if isinstance(s, dict)]
            raise InvalidInput(f"--set {item!r}: no step {parts[0]!r} to set a field of (the steps: {names}).", field="--set")
        target = step if parts[1] == "cache" else step.setdefault(next((k for k in KINDS if k in step), "train"), {})
        path = parts[1:] if parts[1] != "cache" else ["cache"]
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise InvalidInput(f"--set {item!r}: {part} is not a mapping.", field="--set")
        target[path[-1]] = value
    return document
