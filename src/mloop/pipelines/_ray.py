"""Ray as mloop's scale-out engine: connecting (``--ray auto`` or an address), running a tune step's trial workers as
Ray tasks, and batch scoring on Ray Data through the same runtime as local scoring.

Ray is imported inside these functions only, so ``import mloop`` never pays for it. A multi-node cluster needs the
workspace (the study's journal file, the tune step's input, the registry's artifacts) and the pipeline's code on
storage every node mounts at the same path; a local Ray needs nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mloop._ray import probe
from mloop._ray import running_local as _running_local
from mloop.errors import InvalidInput
from mloop.pipelines._score import BATCH_TIMEOUT_MS, _kind, _score, _table, _Writer

_connecting = threading.Lock()  # two tune steps in parallel threads connect once


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InvalidInput('--ray needs Ray, which is not installed: pip install "mloop[ray]".', field="--ray") from None
    return ray


def _probe(address: str) -> None:
    probe(address, "--ray")


def connect(address: str) -> Any:
    """Connect this process to Ray: ``auto`` attaches the Ray already running here (this process's, ``RAY_ADDRESS`` or a
    ``ray start``) or starts a local one; anything else is a cluster's address. Returns the ``ray`` module."""
    ray = _import_ray()
    if address != "auto":
        _probe(address)
    with _connecting:
        if not ray.is_initialized():
            _init(ray, address)
            _joined.append(address)
        elif address != "auto" and _joined and _joined[-1] != address:  # Ray connects a process once: never quietly elsewhere
            raise InvalidInput(f"--ray {address}: this process is already connected to Ray at {_joined[-1]}; use that, or a new process.",
                               field="--ray")
    return ray


_joined: list[str] = []  # the address this process connected to (Ray connects a process once)


def _init(ray: Any, address: str) -> None:
    import logging

    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    target = address if address != "auto" else _running_local()
    try:
        if target is None:
            ray.init(**quiet)
        else:
            ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        raise InvalidInput(f"--ray {address}: could not connect to Ray ({type(exc).__name__}: {exc}).", field="--ray") from None


def run_tasks(address: str, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``function(*args)`` for each of ``calls`` as Ray tasks of one CPU each, all at once; their results in order."""
    ray = connect(address)
    remote = ray.remote(num_cpus=1, max_retries=0)(function)
    return list(ray.get([remote.remote(*args) for args in calls]))


class _Scorer:
    """A Ray Data actor: loads the version's runtime once (the ONNX twin, else the native model) and scores batches."""

    def __init__(self, root: str, name: str, version: int, keep: list[str]) -> None:
        from mloop.serving._runtime import runtime_for
        from mloop.workspace import Workspace

        self.name, self.version, self.keep = name, version, keep
        self.runtime = runtime_for(Workspace.open(Path(root)).registry.load(name, version), runtime_timeout_ms=BATCH_TIMEOUT_MS)

    def __call__(self, table: Any) -> Any:
        batch = _record_batch(table)
        return _table(_score(self.runtime, batch), batch.select(self.keep) if self.keep else None, self.name, self.version)


def _record_batch(table: Any) -> Any:
    """A Ray Data block (an Arrow table, maybe in chunks) as one record batch, as local scoring reads them."""
    import pyarrow as pa

    return pa.RecordBatch.from_arrays([column.combine_chunks() for column in table.columns], schema=table.schema)


def _arrow_source(path: Path, columns: list[str]) -> Any:
    """A Ray Data source over an Arrow IPC (Feather v2) file, which Ray Data has no reader for: its record batches
    split among the read tasks, each task memory-mapping the file and reading only its own."""
    import pyarrow as pa
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class ArrowFile(Datasource):  # type: ignore[misc]
        def estimate_inmemory_data_size(self) -> int | None:
            return path.stat().st_size

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[Any]:
            with pa.memory_map(str(path)) as source:
                reader = pa.ipc.open_file(source)
                count, schema = reader.num_record_batches, reader.schema
                sizes = [reader.get_batch(i).num_rows for i in range(count)]
            per = -(-count // max(1, min(parallelism, count)))  # each task a run of consecutive batches
            tasks = [list(range(start, min(count, start + per))) for start in range(0, count, per)] if count else []
            return [ReadTask(_reader(path, group, columns), BlockMetadata(num_rows=sum(sizes[i] for i in group), size_bytes=None,
                                                                           exec_stats=None, input_files=(str(path),)),
                             schema=pa.schema([schema.field(c) for c in columns]))
                    for group in tasks]

    return ArrowFile()


def _reader(path: Path, group: list[int], columns: list[str]) -> Callable[[], Iterator[Any]]:
    def read() -> Iterator[Any]:
        import pyarrow as pa

        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            for i in group:
                yield pa.Table.from_batches([reader.get_batch(i).select(columns)])

    return read


def _dataset(ray: Any, source: Path, columns: list[str], types: dict[str, Any]) -> Any:
    """The input as a Ray Data dataset of only ``columns`` (a CSV read with the signature's types)."""
    kind = _kind(source)
    if kind == "parquet":
        return ray.data.read_parquet(str(source), columns=columns, file_extensions=None)
    if kind == "csv":
        import pyarrow.csv as csv

        return ray.data.read_csv(str(source), file_extensions=None, read_options=csv.ReadOptions(block_size=1 << 22),
                                 convert_options=csv.ConvertOptions(include_columns=columns, column_types=types))
    return ray.data.read_datasource(_arrow_source(source, columns))


def score_on_ray(address: str, workspace_root: Path, name: str, version: int, source: Path, tmp: Path, kind: str, *, columns: list[str],
                 types: dict[str, Any], keep: list[str], chunk_rows: int, workers: int,
                 on_chunk: Callable[[int], None] | None) -> tuple[int, int]:
    """Read ``source`` with Ray Data, score it in ``workers`` actors (``chunk_rows`` a batch), and append the scores, in
    input order, to ``tmp`` (a ``kind`` file) as they stream back (a bounded number of blocks in flight); returns (rows, chunks)."""
    ray = connect(address)
    dataset = _dataset(ray, source, columns, types)
    dataset.context.execution_options.preserve_order = True  # rows out in the input's order, as local scoring writes them
    dataset.context.enable_progress_bars = False  # the caller shows its own (the CLI's counts rows)
    scored = dataset.map_batches(_Scorer, fn_constructor_args=(str(workspace_root), name, version, keep), batch_format="pyarrow",
                                 batch_size=chunk_rows, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers), num_cpus=1, zero_copy_batch=True)
    writer, rows, chunks = _Writer(tmp, kind), 0, 0
    try:
        for table in _tables(scored, chunk_rows):
            writer.write(table)
            rows, chunks = rows + table.num_rows, chunks + 1
            if on_chunk is not None:
                on_chunk(table.num_rows)
        if chunks == 0:
            import numpy as np

            writer.write(_table(np.empty((0, 1)), None, name, version))
    finally:
        writer.close()
    return rows, chunks


def _tables(dataset: Any, rows: int) -> Iterable[Any]:
    """The dataset's rows as Arrow tables of ``rows``, streamed as the actors produce them (one block ahead)."""
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its execution plan and timings, logged at INFO on each run
    for table in dataset.iter_batches(batch_size=rows, batch_format="pyarrow", prefetch_batches=1):
        if table.num_rows:
            yield table
