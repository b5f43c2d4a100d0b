"""Read tables from Parquet, CSV or Arrow files into pandas, with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from mloop.errors import InvalidInput, NotFound

_READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "arrow", ".feather": "arrow"}


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a table by its file extension (``.parquet``, ``.csv``, ``.arrow``/``.feather``)."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"Data file {str(path)!r} does not exist.", field="path")
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"Cannot read {str(path)!r}: unknown extension {path.suffix!r}. Valid: {', '.join(sorted(_READERS))}.",
            field="path",
        )
    import pandas as pd

    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_feather(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"Cannot read {str(path)!r} as {kind}: {exc}", field="path") from exc
