"""Read tables from Parquet, CSV or Arrow files into pandas, or with Arrow alone into columns of arrays, with
errors that name the file and the problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from mloop.data._columns import Coded

from mloop.errors import InvalidInput, NotFound

_READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "arrow", ".feather": "arrow"}


def _kind(path: Path) -> str:
    if not path.exists():
        raise NotFound(f"Data file {str(path)!r} does not exist.", field="path")
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"Cannot read {str(path)!r}: unknown extension {path.suffix!r}. Valid: {', '.join(sorted(_READERS))}.",
            field="path",
        )
    return kind


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a table by its file extension (``.parquet``, ``.csv``, ``.arrow``/``.feather``)."""
    path = Path(path)
    kind = _kind(path)
    import pandas as pd

    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_feather(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"Cannot read {str(path)!r} as {kind}: {exc}", field="path") from exc


def _arrow(path: Path, kind: str) -> Iterator[tuple[str, pa.ChunkedArray]]:
    """The table's columns one at a time: a Parquet file is read column by column on one thread, so that only one
    column's Arrow buffers live beside the arrays made so far (a whole-table read held twice the memory)."""
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path, pre_buffer=False)  # not read_table: pyarrow.dataset loads pandas
            for name in parquet.schema_arrow.names:
                yield name, parquet.read(columns=[name], use_threads=False).column(0)
            return
        if kind == "csv":
            import pyarrow.csv as pv

            table = pv.read_csv(path, convert_options=pv.ConvertOptions(strings_can_be_null=True))  # as pandas: empty is missing
        else:
            import pyarrow.feather as pf

            table = pf.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InvalidInput(f"Cannot read {str(path)!r} as {kind}: {exc}", field="path") from exc
    yield from zip(table.column_names, table.columns, strict=True)


def _numpy(array: pa.Array, dtype: str, missing: float | int | None = None) -> np.ndarray:
    """A fixed-width Arrow array as NumPy, nulls replaced by ``missing``, read from its buffers: ``to_numpy`` and
    ``fill_null`` would import pandas, a quarter of a second and 80 MiB."""
    import numpy as np

    kind = np.dtype(dtype)
    validity, values = array.buffers()[:2]
    out = np.frombuffer(values, dtype=kind, count=len(array), offset=array.offset * kind.itemsize)
    if array.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        out = out.copy()
        out[bits[array.offset : array.offset + len(array)] == 0] = missing
    return out


def read_columns(path: str | Path) -> dict[str, np.ndarray | Coded]:
    """Load a table as the drift tests read it, with Arrow and without pandas: numbers (nulls as NaN) become
    float or integer arrays, everything else integer codes into its distinct values (nulls ``-1``). A third of
    the memory of a DataFrame of Python strings, and no pandas import."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from mloop.data._columns import Coded

    path = Path(path)
    columns: dict[str, np.ndarray | Coded] = {}
    for name, column in _arrow(path, _kind(path)):
        if name in columns:
            raise InvalidInput(f"{str(path)!r} has column {name!r} more than once; give each column one name.", field=name)
        kind = column.type
        try:
            if pa.types.is_null(kind):  # a column with no values at all (a CSV with only its header)
                columns[name] = np.full(len(column), np.nan)
            elif pa.types.is_integer(kind) and column.null_count == 0 and kind != pa.uint64():
                columns[name] = _numpy(pc.cast(column, pa.int64()).combine_chunks(), "int64")
            elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
                columns[name] = _numpy(pc.cast(column, pa.float64()).combine_chunks(), "float64", float("nan"))
            elif pa.types.is_nested(kind):
                raise InvalidInput(f"Column {name!r} of {str(path)!r} holds {kind} values; drift compares numbers and categories.", field=name)
            else:
                plain = column.cast(kind.value_type) if pa.types.is_dictionary(kind) else column  # chunks may hold different dictionaries
                encoded = pc.dictionary_encode(plain).combine_chunks()
                codes = _numpy(pc.cast(encoded.indices, pa.int64()), "int64", -1)
                columns[name] = Coded(codes, [str(v) for v in encoded.dictionary.to_pylist()])
        except pa.ArrowException as exc:
            raise InvalidInput(f"Column {name!r} of {str(path)!r} cannot be read as numbers or categories: {exc}", field=name) from exc
    return columns
