"""Data: readers, schemas and fingerprints. Names load lazily, so a command imports only the part it uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

if TYPE_CHECKING:
    from mloop.data._columns import Coded, as_columns
    from mloop.data._fingerprint import Fingerprint, fingerprint
    from mloop.data._readers import read_columns, read_table

_WHERE = {
    "Coded": "_columns", "as_columns": "_columns", "Fingerprint": "_fingerprint", "fingerprint": "_fingerprint",
    "read_columns": "_readers", "read_table": "_readers",
}

__all__ = ["Coded", "as_columns", "Fingerprint", "fingerprint", "read_columns", "read_table"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
