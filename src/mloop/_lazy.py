"""Packages whose parts are heavy load their names lazily: ``__getattr__ = lazy_names(__name__, _WHERE, globals())``
imports ``package.<module>`` the first time one of its names is used, and keeps the name so later uses are plain."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``where`` maps each public name to the submodule that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        namespace[name] = value
        return value

    return __getattr__


class _SkipArrayApiShims:
    """A finder that refuses scikit-learn's array-API shims for torch, CuPy, Dask and JAX, for the length of one
    import: ``pkgutil.walk_packages`` (which skops runs through ``all_estimators`` when it is imported) imports every
    package it walks, and the torch shim imports torch — 1.3 s of start-up for a process that serves trees."""

    SHIMS = frozenset({"torch", "cupy", "dask", "jax"})

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        parent, _, leaf = name.rpartition(".")
        if parent == "sklearn.externals.array_api_compat" and leaf in self.SHIMS:
            raise ImportError(f"{name} is skipped while skops.io is imported")  # walk_packages passes over it


def skops_io() -> Any:
    """``skops.io``, imported without the array-API shims its estimator walk would drag in (torch above all); a shim
    needed later imports normally (a refused import is not cached)."""
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    finder = _SkipArrayApiShims()
    sys.meta_path.insert(0, finder)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(finder)
    return skops.io
