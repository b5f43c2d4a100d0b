"""Dataset fingerprints: a content hash, the schema and the row count, so a run names exactly what it saw."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a table: ``sha256`` of its content (values, column names and order), ``schema`` and ``rows``."""

    sha256: str
    schema: dict[str, str]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint(frame: pd.DataFrame) -> Fingerprint:
    """Fingerprint ``frame``; equal content gives an equal hash, any changed cell, column or row order does not.

    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    >>> fingerprint(a) == fingerprint(a.copy())
    True
    >>> fingerprint(a).sha256 == fingerprint(a.assign(x=[1, 3])).sha256
    False
    >>> fingerprint(a).rows, fingerprint(a).schema
    (2, {'x': 'int64', 'y': 'str'})
    """
    import pandas as pd

    digest = hashlib.sha256()
    schema = {str(col): str(dtype) for col, dtype in frame.dtypes.items()}
    for name, dtype in schema.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    for column, dtype in frame.dtypes.items():  # a categorical's categories and their order are part of its content
        if isinstance(dtype, pd.CategoricalDtype):
            digest.update(f"{column}\x1f{list(dtype.categories)!r}\x1f{dtype.ordered}\x1e".encode())
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(row_hashes.tobytes())
    return Fingerprint(sha256=digest.hexdigest(), schema=schema, rows=len(frame))
