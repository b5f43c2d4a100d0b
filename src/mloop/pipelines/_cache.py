"""The step cache: a step is skipped when the hash of its code, its parameters and its inputs' content matches an
earlier successful run of it.

- **Files** are fingerprinted by content (SHA-256), and the fingerprint is reused while the file's (size, mtime,
  inode) stay the same: a rerun with nothing changed stats files instead of reading them.
- **Code** is the step's callable's source and that of every function or class of the project it reaches (names it
  uses, followed through the project's modules), so an edited helper one step calls reruns that step and those after
  it. Code outside the project (installed packages) counts by package name and version.
- **Outputs** are stored content-addressed under ``<workspace>/pipelines/artifacts``: a table as Parquet, a model
  pickled, metrics as JSON; each has the SHA-256 its consumers' keys are made from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from mloop.files import write_atomic

CHUNK = 1 << 20


class FileFingerprints:
    """Content hashes of files, remembered by (size, mtime, inode) in ``index`` (a JSON file, written atomically)."""

    def __init__(self, index: Path) -> None:
        self.index = index
        self._lock = threading.Lock()
        try:
            self._known: dict[str, dict[str, Any]] = json.loads(index.read_text())
        except (FileNotFoundError, ValueError):
            self._known = {}
        self.read_bytes = 0  # how much was read to hash (0 on a rerun with nothing changed)

    def sha256(self, path: Path) -> str:
        path = path.resolve()
        stat = path.stat()
        key = str(path)
        stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
        with self._lock:
            known = self._known.get(key)
            if known is not None and all(known.get(k) == v for k, v in stamp.items()):
                return str(known["sha256"])
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                self.read_bytes += len(chunk)
        with self._lock:
            self._known[key] = {**stamp, "sha256": digest.hexdigest()}
        return digest.hexdigest()

    def save(self) -> None:
        with self._lock:
            write_atomic(self.index, json.dumps(self._known, sort_keys=True))


def _project_file(module_name: str, root: Path) -> Path | None:
    """The source file of ``module_name`` when it is the project's (under ``root``, not an installed package); an
    installed package is told from its top-level name alone, so nothing of it is imported."""
    import importlib.util

    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        try:
            top = importlib.util.find_spec(module_name.split(".")[0])  # a top-level name: found without importing anything
            where = (top.origin or next(iter(top.submodule_search_locations or []), None)) if top is not None else None
            if where is None or not _inside(Path(where).resolve(), root):
                return None
            spec = importlib.util.find_spec(module_name)  # (imports the project's own parent packages, if any)
        except (ImportError, ValueError):
            return None
        file = spec.origin if spec is not None else None
    if not file or not str(file).endswith(".py"):
        return None
    path = Path(file).resolve()
    return path if _inside(path, root) else None


def _inside(path: Path, root: Path) -> bool:
    return path.is_relative_to(root) and "site-packages" not in path.parts and not any(p.startswith(".venv") for p in path.parts)


def resolve_callable(path: str, where: str) -> Any:
    """``module:function`` imported (again, when its project file was edited since); a failure names the step's field."""
    import importlib

    from mloop.errors import InvalidInput

    module_name, _, name = path.partition(":")
    try:
        module = fresh(importlib.import_module(module_name))
    except Exception as exc:
        raise InvalidInput(f"{where}: cannot import {module_name!r} ({type(exc).__name__}: {exc}).", field=where) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise InvalidInput(f"{where}: {module_name!r} has no function {name!r}.", field=where)
    return function


def _imports(path: Path) -> set[str]:
    """Every module a source file imports, anywhere in it (a function's own imports too), as absolute names; parsed
    once per version of the file."""
    stat = path.stat()
    return set(_parsed_imports(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=1024)
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    import ast

    names: set[str] = set()
    package = path.parent
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing file's package, by its folder's name
                base = ".".join([package.name] if node.level == 1 else [])
                module = ".".join(p for p in (base, node.module or "") if p)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(n for n in names if n)


# Import names whose distribution is named otherwise, looked up before scanning every installed distribution.
_KNOWN = {"sklearn": "scikit-learn", "yaml": "PyYAML", "jwt": "PyJWT", "PIL": "Pillow", "cv2": "opencv-python", "dateutil": "python-dateutil",
          "skops": "skops", "google": "protobuf"}


@functools.lru_cache(maxsize=4096)
def _version(top: str) -> str:
    """``top:distribution==version`` of the distribution that installs the module ``top``: the one named like it (or
    as :data:`_KNOWN` says) when there is one, else found by scanning every distribution (once per process)."""
    def candidates() -> Iterator[str]:  # the cheap guess first; the scan only when it is wrong
        yield _KNOWN.get(top, top)
        yield from _distributions().get(top, [top])

    for name in candidates():
        try:
            return f"{top}:{name}=={metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return top


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())  # scans every installed distribution: once per process


def code_hash(function: Any, root: Path) -> str:
    """SHA-256 of the code a step runs (``function``: its ``module:name`` as the spec says it, or the object): the
    source files of its module and of every project module it imports (anywhere in the file, recursively) — whole
    files, so a constant, a default, a closure or a decorated helper changed in them counts — and the name and version
    of every installed package they import. A callable from an installed package counts as its package and version.
    From a ``module:name`` nothing is imported: a rerun that finds every step cached runs none of the project's code."""
    if isinstance(function, str):
        module_name, _, qualname = function.partition(":")
    else:
        module_name, qualname = getattr(function, "__module__", "") or "", getattr(function, "__qualname__", "")
    digest = hashlib.sha256(f"{module_name}:{qualname}\n".encode())
    start = _project_file(module_name, root)
    if start is None:
        digest.update(_version(module_name.split(".")[0]).encode())
        return digest.hexdigest()
    seen: set[Path] = set()
    packages: set[str] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            found = _project_file(name, root)
            if found is not None:
                todo.append(found)
            elif name.split(".")[0] not in sys.stdlib_module_names:
                packages.add(name.split(".")[0])
    for path in sorted(seen):
        digest.update(f"{path.relative_to(root)}\n".encode())
        digest.update(path.read_bytes())
    for top in sorted(packages):
        digest.update(f"{_version(top)}\n".encode())
    return digest.hexdigest()


def fresh(module: Any) -> Any:
    """The module as its file now is: a project module edited since this process first used it is imported again, so
    that the code that runs is the code that was hashed."""
    import importlib

    file = getattr(module, "__file__", None)
    if not file or not str(file).endswith(".py"):
        return module
    try:
        stamp = Path(file).stat().st_mtime_ns
    except OSError:
        return module
    if _LOADED.setdefault(module.__name__, stamp) != stamp:
        module = importlib.reload(module)
        _LOADED[module.__name__] = stamp
    return module


_LOADED: dict[str, int] = {}  # module → its file's mtime when this process first used it


def digest_of(value: Any) -> str:
    """SHA-256 of a JSON-able value (parameters, a cache key's parts)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


PICKLED = ("model", "transform")  # output types stored as pickles (fitted scikit-learn objects)


class Artifacts:
    """Step outputs stored by content: ``put`` returns ``(sha256, path)``, ``get`` loads one back."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, kind: str, value: Any) -> dict[str, str]:
        from mloop.data import fingerprint
        from mloop.files import replacing

        if kind == "table":
            sha = fingerprint(value).sha256
            path = self.folder / f"{sha}.parquet"
            if not path.exists():
                with replacing(path) as tmp:
                    value.to_parquet(tmp, index=False)
        else:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) if kind in PICKLED else \
                json.dumps(value, sort_keys=True, default=str).encode()
            sha = hashlib.sha256(data).hexdigest()
            path = self.folder / f"{sha}.{'pkl' if kind in PICKLED else 'json'}"
            if not path.exists():
                write_atomic(path, data)
        return {"type": kind, "sha256": sha, "path": str(path)}

    @staticmethod
    def get(ref: dict[str, str]) -> Any:
        path = Path(ref["path"])
        if ref["type"] == "table":
            import pandas as pd

            return pd.read_parquet(path)
        if ref["type"] in PICKLED:
            return pickle.loads(path.read_bytes())  # noqa: S301 - this workspace's own step output, by its hash
        return json.loads(path.read_text())


class StepCache:
    """Cache key → the outputs a successful run of the step made (one JSON file per key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry: dict[str, Any] = json.loads((self.folder / f"{key}.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        if all(os.path.exists(o["path"]) for o in entry["outputs"].values()):
            return entry
        return None  # an output was removed: run the step again

    def put(self, key: str, entry: dict[str, Any]) -> None:
        write_atomic(self.folder / f"{key}.json", json.dumps(entry, sort_keys=True))
