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

import hashlib
import inspect
import json
import os
import pickle
import sys
import threading
import types
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


def _in_project(obj: Any, root: Path) -> bool:
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if not file:
        return False
    path = Path(file).resolve()
    return path.is_relative_to(root) and "site-packages" not in path.parts and ".venv" not in path.parts


def _package(obj: Any) -> str:
    top = (getattr(obj, "__module__", "") or "").split(".")[0]
    try:
        return f"{top}=={metadata.version(top)}"
    except metadata.PackageNotFoundError:
        return top


def code_hash(function: Any, root: Path) -> str:
    """SHA-256 of ``function``'s source and of every project function or class it reaches by name (recursively);
    anything outside the project counts as its package and version."""
    digest = hashlib.sha256()
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if not _in_project(obj, root) and obj is not function:
            digest.update(f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}@{_package(obj)}\n".encode())
            return
        try:
            digest.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):
            digest.update(repr(obj).encode())
        if not _in_project(obj, root):
            digest.update(_package(obj).encode())  # the step's own library callable: its package version
            return
        for name, value in _referenced(obj):
            digest.update(name.encode())
            visit(value)

    visit(function)
    return digest.hexdigest()


def _referenced(obj: Any) -> list[tuple[str, Any]]:
    """The functions and classes a function (or a class's methods) names, found in its module's globals; a module it
    names contributes the members it uses."""
    functions = [obj] if isinstance(obj, types.FunctionType) else [v for v in vars(obj).values() if isinstance(v, types.FunctionType)] \
        if isinstance(obj, type) else []
    out: list[tuple[str, Any]] = []
    for fn in functions:
        names: set[str] = set()
        stack = [fn.__code__]
        while stack:
            code = stack.pop()
            names.update(code.co_names)
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        scope = fn.__globals__
        for name in sorted(names):
            value = scope.get(name)
            if isinstance(value, types.ModuleType):
                out.extend((f"{name}.{n}", getattr(value, n)) for n in sorted(names) if callable(getattr(value, n, None)))
            elif isinstance(value, types.FunctionType | type):
                out.append((name, value))
    return out


def digest_of(value: Any) -> str:
    """SHA-256 of a JSON-able value (parameters, a cache key's parts)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


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
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) if kind == "model" else \
                json.dumps(value, sort_keys=True, default=str).encode()
            sha = hashlib.sha256(data).hexdigest()
            path = self.folder / f"{sha}.{'pkl' if kind == 'model' else 'json'}"
            if not path.exists():
                write_atomic(path, data)
        return {"type": kind, "sha256": sha, "path": str(path)}

    @staticmethod
    def get(ref: dict[str, str]) -> Any:
        path = Path(ref["path"])
        if ref["type"] == "table":
            import pandas as pd

            return pd.read_parquet(path)
        if ref["type"] == "model":
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
