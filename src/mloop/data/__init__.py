"""Data: readers, schemas and fingerprints. Names load lazily, so a command imports only the part it uses."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.data._columns import Coded, as_columns
    from mloop.data._fingerprint import Fingerprint, fingerprint
    from mloop.data._readers import read_columns, read_table

_WHERE = {
    "Coded": "_columns", "as_columns": "_columns", "Fingerprint": "_fingerprint", "fingerprint": "_fingerprint",
    "read_columns": "_readers", "read_table": "_readers",
}

__all__ = ["Coded", "as_columns", "Fingerprint", "fingerprint", "read_columns", "read_table"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mloop.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mloop.data.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
