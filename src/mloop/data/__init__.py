"""Data: readers, schemas and fingerprints."""

from __future__ import annotations

from mloop.data._fingerprint import Fingerprint, fingerprint
from mloop.data._readers import read_table

__all__ = ["Fingerprint", "fingerprint", "read_table"]
