"""Batch scoring: a registered version over a file of any size, in chunks, through the runtime the server would use
(the ONNX twin where there is one), in parallel processes or on Ray Data if asked; memory bounded by the chunks in
flight, not the file. The input's schema is checked against the model's signature before the first chunk; every output row carries
the model's name and version; the output file appears whole or not at all.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from mloop.errors import InvalidInput

NUMERIC = {"double", "float", "long", "integer", "boolean"}
_worker_runtime: Any = None  # in a worker process: the runtime it loaded once
BATCH_TIMEOUT_MS = 600_000.0  # a chunk of 100,000 rows is not a request: the server's 1 s watchdog would abort it


@dataclass(frozen=True)
class ScoreResult:
    rows: int
    chunks: int
    seconds: float
    output: Path
    name: str
    version: int
    runtime: str


def parse_ref(text: str) -> tuple[str, str | int]:
    """``name@alias``, ``name:version`` or ``name`` (its champion)."""
    if "@" in text:
        name, alias = text.split("@", 1)
        return name, alias
    if ":" in text:
        name, version = text.rsplit(":", 1)
        if not version.isdigit():
            raise InvalidInput(f"MODEL {text!r}: after ':' comes a version number (or use name@alias).", field="model")
        return name, int(version)
    return text, "champion"


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    kinds = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow"}
    if suffix not in kinds:
        raise InvalidInput(f"{path}: cannot tell the format from {suffix!r}; use .parquet, .csv, .arrow or .feather.", field="path")
    return kinds[suffix]


def input_schema(path: Path) -> Any:
    """The input's Arrow schema, read without reading its rows (a CSV: from its first block)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InvalidInput(f"No input file at {path}.", field="input")
    kind = _kind(path)
    if kind == "parquet":
        return pq.ParquetFile(path).schema_arrow
    if kind == "arrow":
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).schema
    import pyarrow.csv as csv

    return csv.open_csv(path).schema


def check_signature(schema: Any, inputs: list[Any], model: str) -> None:
    """Every required input column present, numbers where the model takes numbers, text where it takes text."""
    import pyarrow as pa

    names = set(schema.names)
    missing = [c.name for c in inputs if c.required and c.name not in names]
    if missing:
        raise InvalidInput(f"The input lacks column(s) {missing} that {model} takes; it has {sorted(names)}.", field=missing[0])
    for spec in inputs:
        if spec.name not in names:
            continue
        arrow = schema.field(spec.name).type
        numeric = pa.types.is_integer(arrow) or pa.types.is_floating(arrow) or pa.types.is_boolean(arrow) or pa.types.is_null(arrow)
        text = pa.types.is_string(arrow) or pa.types.is_large_string(arrow) or pa.types.is_dictionary(arrow) or pa.types.is_null(arrow)
        if (spec.type in NUMERIC and not numeric) or (spec.type == "string" and not text):
            raise InvalidInput(f"Column {spec.name!r} is {arrow} in the input, but {model} takes {spec.type}.", field=spec.name)


def batches(path: Path, columns: list[str], rows: int, types: dict[str, Any] | None = None) -> Iterator[Any]:
    """The file's rows in Arrow record batches of at most ``rows`` (only ``columns``; a CSV's read as ``types``)."""
    import pyarrow as pa

    kind = _kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns)
    elif kind == "arrow":
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i).select(columns)
                for start in range(0, batch.num_rows, rows):
                    yield batch.slice(start, rows)
    else:
        import pyarrow.csv as csv

        # Types from the signature, not guessed from the first block (a later block would not fit the guess).
        reader = csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 22),
                              convert_options=csv.ConvertOptions(include_columns=columns, column_types=types or {}))
        for batch in reader:
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)


def block_of(batch: Any, inputs: list[Any], matrix: bool) -> Any:
    """An Arrow batch as the block a runtime takes: a float64 matrix, or named column arrays."""
    from mloop.serving._codec import ColumnBlock

    arrays = {}
    for spec in inputs:
        if spec.name not in batch.schema.names:
            arrays[spec.name] = np.full(batch.num_rows, np.nan) if spec.type in NUMERIC else np.full(batch.num_rows, None, dtype=object)
            continue
        column = batch.column(spec.name)
        if spec.type in NUMERIC:
            arrays[spec.name] = column.cast("float64").to_numpy(zero_copy_only=False)
        else:
            if hasattr(column, "dictionary_decode") and str(column.type).startswith("dictionary"):
                column = column.dictionary_decode()
            arrays[spec.name] = column.to_numpy(zero_copy_only=False).astype(object, copy=False)
    if matrix:
        return np.column_stack([arrays[c.name] for c in inputs]) if inputs else np.empty((batch.num_rows, 0))
    return ColumnBlock(arrays, batch.num_rows)


def _score(runtime: Any, batch: Any) -> np.ndarray:
    [out] = runtime.predict([block_of(batch, runtime.inputs, bool(getattr(runtime, "matrix", False)))])
    if isinstance(out, BaseException):
        raise out
    return np.asarray(out)


def _load_worker(root: str, name: str, version: int) -> None:
    global _worker_runtime
    from mloop.serving._runtime import runtime_for
    from mloop.workspace import Workspace

    _worker_runtime = runtime_for(Workspace.open(Path(root)).registry.load(name, version), runtime_timeout_ms=BATCH_TIMEOUT_MS)


def _score_in_worker(batch: Any) -> np.ndarray:
    return _score(_worker_runtime, batch)


def _table(output: np.ndarray, kept: Any, name: str, version: int) -> Any:
    import pyarrow as pa

    out = output.reshape(len(output), -1) if output.ndim > 1 else output.reshape(-1, 1)
    if out.shape[1] == 2:
        columns = {"score": out[:, 1]}  # a binary classifier: the positive class's probability
    elif out.shape[1] == 1:
        columns = {"prediction": out[:, 0]}
    else:
        columns = {f"output_{i}": out[:, i] for i in range(out.shape[1])}
    arrays = {**({n: kept.column(n) for n in kept.schema.names} if kept is not None else {}), **columns}
    arrays["model_name"] = pa.array([name] * len(out), type=pa.string()).dictionary_encode()
    arrays["model_version"] = pa.array(np.full(len(out), version, dtype=np.int64))
    return pa.table(arrays)


class _Writer:
    """Appends tables to one Parquet, Arrow or CSV file (opened on the first table, for its schema)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self._writer: Any = None

    def write(self, table: Any) -> None:
        import pyarrow as pa

        if self._writer is None:
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.path, table.schema)
            elif self.kind == "arrow":
                self._writer = pa.ipc.new_file(str(self.path), table.schema)
            else:
                import pyarrow.csv as csv

                self._writer = csv.CSVWriter(self.path, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def score_file(workspace: Any, model: str, source: Path, output: Path, *, chunk_rows: int = 100_000, workers: int = 1,
               keep: list[str] | None = None, on_chunk: Callable[[int], None] | None = None, ray: str | None = None) -> ScoreResult:
    """Score every row of ``source`` with ``model`` (``name[@alias|:version]``) into ``output``; with ``ray`` (``auto`` or
    a cluster's address) on Ray Data, ``workers`` actors scoring at once."""
    from mloop.files import replacing
    from mloop.serving._runtime import runtime_for

    name, ref = parse_ref(model)
    loaded = workspace.registry.load(name, ref)
    label = f"{name} v{loaded.version}"
    schema = input_schema(source)
    check_signature(schema, loaded.inputs, label)
    keep = list(keep or [])
    absent = [k for k in keep if k not in schema.names]
    if absent:
        raise InvalidInput(f"--keep: the input has no column(s) {absent}.", field="keep")
    taken = [k for k in keep if k in ("score", "prediction", "model_name", "model_version") or k.startswith("output_")]
    if taken:
        raise InvalidInput(f"--keep: {taken} would collide with the scores' own columns; rename it in the input.", field="keep")
    if not loaded.inputs:
        raise InvalidInput(f"{label} has no input signature: batch scoring needs its named inputs.", field="model")
    _kind(output)
    needed = list(dict.fromkeys([c.name for c in loaded.inputs if c.name in schema.names] + keep))
    import pyarrow as pa

    types = {c.name: (pa.string() if c.type == "string" else pa.float64()) for c in loaded.inputs if c.name in schema.names}
    if ray is not None:
        from mloop.pipelines._ray import connect, score_on_ray

        connect(ray)  # before the output's temporary file exists: a bad address leaves nothing behind
        started = time.perf_counter()
        with replacing(output) as tmp:
            rows, chunks = score_on_ray(ray, workspace.root, name, loaded.version, source, tmp, _kind(output), columns=needed, types=types,
                                        keep=keep, chunk_rows=chunk_rows, workers=workers, on_chunk=on_chunk)
        return ScoreResult(rows, chunks, time.perf_counter() - started, output, name, loaded.version, "ray")
    runtime = runtime_for(loaded, runtime_timeout_ms=BATCH_TIMEOUT_MS) if workers == 1 else None
    started, rows, chunks = time.perf_counter(), 0, 0
    with replacing(output) as tmp:
        writer = _Writer(tmp, _kind(output))
        try:
            if workers == 1:
                for batch in batches(source, needed, chunk_rows, types):
                    writer.write(_table(_score(runtime, batch), batch.select(keep) if keep else None, name, loaded.version))
                    rows, chunks = rows + batch.num_rows, chunks + 1
                    if on_chunk is not None:
                        on_chunk(batch.num_rows)
            else:
                with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_load_worker,
                                         initargs=(str(workspace.root), name, loaded.version)) as pool:
                    window: deque[tuple[Future[np.ndarray], Any]] = deque()
                    for batch in batches(source, needed, chunk_rows, types):
                        window.append((pool.submit(_score_in_worker, batch), batch.select(keep) if keep else None))
                        if len(window) >= 2 * workers:  # a bounded number of chunks in flight: memory does not grow with the file
                            rows, chunks = _drain(window.popleft(), writer, name, loaded.version, rows, chunks, on_chunk)
                    while window:
                        rows, chunks = _drain(window.popleft(), writer, name, loaded.version, rows, chunks, on_chunk)
            if chunks == 0:
                writer.write(_table(np.empty((0, 1)), None, name, loaded.version))
        finally:
            writer.close()
    return ScoreResult(rows, chunks, time.perf_counter() - started, output, name, loaded.version,
                       runtime.kind if runtime is not None else "workers")


def _drain(item: tuple[Future[np.ndarray], Any], writer: _Writer, name: str, version: int, rows: int, chunks: int,
           on_chunk: Callable[[int], None] | None) -> tuple[int, int]:
    future, kept = item
    scores = future.result()
    writer.write(_table(scores, kept, name, version))
    if on_chunk is not None:
        on_chunk(len(scores))
    return rows + len(scores), chunks + 1
