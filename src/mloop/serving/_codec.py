"""Request bodies to typed frames and predictions to response bodies: MLflow scoring and Open Inference Protocol v2."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.registry import ColumnSpec

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


def check_value(field: str, value: Any, kind: str, allow_missing: bool) -> None:
    """``InvalidInput`` naming ``field`` unless ``value`` is of the signature type ``kind`` (null only if ``allow_missing``)."""
    if value is None:
        if not allow_missing:
            raise InvalidInput(f"Field {field!r} is null; this deployment does not accept missing values.", field=field)
        return
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidInput(f"Field {field!r} must be a string, got {type(value).__name__} {value!r}.", field=field)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(f"Field {field!r} must be a boolean, got {type(value).__name__} {value!r}.", field=field)
    elif kind in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"Field {field!r} must be a number, got {type(value).__name__} {str(value)[:40]!r}.", field=field)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"Field {field!r} must be finite, got {value!r}.", field=field)
        if isinstance(value, int) and abs(value) > 2**53:
            raise InvalidInput(f"Field {field!r} is too large to represent exactly: {str(value)[:40]}.", field=field)
        if kind in ("long", "integer") and isinstance(value, float) and not value.is_integer():
            raise InvalidInput(f"Field {field!r} must be an integer, got {value!r}.", field=field)


def _rows(columns: dict[str, list[Any]]) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput(f"All input fields must have the same number of rows, got lengths {sorted(lengths)}.", field="inputs")
    n = lengths.pop() if lengths else 0
    if n == 0:
        raise InvalidInput("The request holds no rows.", field="inputs")
    return n


def _check_names(columns: dict[str, list[Any]], schema: list[ColumnSpec]) -> None:
    known = {c.name for c in schema}
    for name in columns:
        if name not in known:
            raise InvalidInput(f"Unknown field {name!r}; the model expects {sorted(known)}.", field=name)
    for spec in schema:
        if spec.required and spec.name not in columns:
            raise InvalidInput(f"Missing required field {spec.name!r}.", field=spec.name)


def typed_matrix(columns: dict[str, list[Any]], schema: list[ColumnSpec], *, allow_missing: bool = True) -> np.ndarray:
    """A float64 matrix (rows × signature columns, in signature order) for an all-numeric model."""
    n = _rows(columns)
    _check_names(columns, schema)
    out = np.empty((n, len(schema)))
    for j, spec in enumerate(schema):
        values = columns.get(spec.name)
        if values is None:
            if not allow_missing:
                raise InvalidInput(f"Missing field {spec.name!r}.", field=spec.name)
            out[:, j] = np.nan
            continue
        for value in values:
            check_value(spec.name, value, spec.type, allow_missing)
        out[:, j] = [np.nan if v is None else v for v in values]
    return out


class ColumnBlock(dict):  # type: ignore[type-arg]
    """Validated columns of one request (name → float64 or object array), in signature order; no pandas."""

    def __init__(self, arrays: dict[str, np.ndarray], rows: int) -> None:
        super().__init__(arrays)
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    @staticmethod
    def join(blocks: list[ColumnBlock]) -> ColumnBlock:
        if len(blocks) == 1:
            return blocks[0]
        return ColumnBlock({k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}, sum(b.rows for b in blocks))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(self))


def typed_columns(columns: dict[str, list[Any]], schema: list[ColumnSpec], *, allow_missing: bool = True) -> ColumnBlock:
    """Like ``typed_frame`` but returns plain arrays (cheaper on the hot path)."""
    n = _rows(columns)
    _check_names(columns, schema)
    out: dict[str, np.ndarray] = {}
    for spec in schema:
        values = columns.get(spec.name)
        if values is None:
            values = [None] * n
        for value in values:
            check_value(spec.name, value, spec.type, allow_missing)
        if spec.type in NUMERIC_TYPES:
            out[spec.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        else:
            arr = np.empty(n, dtype=object)
            arr[:] = values
            out[spec.name] = arr
    return ColumnBlock(out, n)


def typed_frame(columns: dict[str, list[Any]], schema: list[ColumnSpec], *, allow_missing: bool = True) -> pd.DataFrame:
    """Check ``columns`` against the model signature and build the frame the model expects.

    Missing or unknown fields, wrong types and non-finite numbers raise ``InvalidInput`` naming the field;
    ``null`` is a missing value (NaN for numbers) unless ``allow_missing`` is off.
    """
    if not schema:
        _rows(columns)
        return pd.DataFrame(columns)
    frame = typed_columns(columns, schema, allow_missing=allow_missing).frame()
    for spec in schema:
        if spec.type == "boolean":
            frame[spec.name] = pd.array(frame[spec.name].tolist(), dtype="boolean")
    return frame


def _records_to_columns(records: Any, field: str) -> dict[str, list[Any]]:
    if not isinstance(records, list) or not records:
        raise InvalidInput(f"{field!r} must be a non-empty list of records.", field=field)
    if not all(isinstance(r, dict) for r in records):
        raise InvalidInput(f"Every item of {field!r} must be an object mapping field names to values.", field=field)
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    return {name: [r.get(name) for r in records] for name in names}


def mlflow_columns(body: Any) -> dict[str, list[Any]]:
    """Columns from an MLflow scoring body: ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``."""
    if not isinstance(body, dict):
        raise InvalidInput(f"The body must be a JSON object with one of {list(MLFLOW_FORMATS)}.", field="body")
    present = [k for k in MLFLOW_FORMATS if k in body]
    if len(present) != 1:
        raise InvalidInput(
            f"The body must hold exactly one of {list(MLFLOW_FORMATS)}, got {sorted(body)}.", field="body"
        )
    key = present[0]
    payload = body[key]
    if key == "dataframe_split":
        if not isinstance(payload, dict) or not isinstance(payload.get("columns"), list) or not isinstance(payload.get("data"), list):
            raise InvalidInput("'dataframe_split' must be an object with 'columns' (list) and 'data' (list of rows).", field="dataframe_split")
        cols = payload["columns"]
        if not all(isinstance(c, str) for c in cols) or len(set(cols)) != len(cols):
            raise InvalidInput("'dataframe_split.columns' must be distinct strings.", field="dataframe_split.columns")
        rows = payload["data"]
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(cols):
                raise InvalidInput(
                    f"Row {i} of 'dataframe_split.data' must be a list of {len(cols)} values.", field="dataframe_split.data"
                )
        return {c: [row[j] for row in rows] for j, c in enumerate(cols)}
    if key == "dataframe_records":
        return _records_to_columns(payload, key)
    if key == "instances":
        return _records_to_columns(payload, key)
    if isinstance(payload, dict):
        if not all(isinstance(v, list) for v in payload.values()):
            raise InvalidInput("'inputs' as an object must map each field to a list of values.", field="inputs")
        return {str(k): v for k, v in payload.items()}
    return _records_to_columns(payload, key)


_V2_TYPES = {"BYTES", "BOOL", "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def v2_columns(body: Any) -> tuple[dict[str, list[Any]], str | None]:
    """Columns and the request ``id`` from an Open Inference Protocol v2 ``infer`` body (one tensor per feature)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InvalidInput("The body must be an object with a non-empty 'inputs' list of tensors.", field="inputs")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string.", field="id")
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(body["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise InvalidInput(f"{where} must be an object with name, shape, datatype and data.", field=where)
        name, shape, dtype, data = tensor.get("name"), tensor.get("shape"), tensor.get("datatype"), tensor.get("data")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}.name must be a non-empty string.", field=f"{where}.name")
        if dtype not in _V2_TYPES:
            raise InvalidInput(f"{where}.datatype must be one of {sorted(_V2_TYPES)}, got {dtype!r}.", field=name)
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise InvalidInput(f"{where}.shape must be a list of non-negative integers, got {shape!r}.", field=name)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(f"Tensor {name!r} must have shape [n] or [n, 1] (one feature per tensor), got {shape}.", field=name)
        flat = np.ravel(np.asarray(data, dtype=object)).tolist() if isinstance(data, list) else None
        if flat is None or len(flat) != shape[0]:
            raise InvalidInput(f"Tensor {name!r} declares shape {shape} but holds {0 if flat is None else len(flat)} values.", field=name)
        if name in columns:
            raise InvalidInput(f"Tensor {name!r} appears twice.", field=name)
        columns[name] = flat
    return columns, request_id


_V2_NUMPY = {
    "BOOL": "?", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}


def _decode_bytes_tensor(raw: bytes, name: str) -> list[str]:
    """BYTES elements as the binary extension sends them: a little-endian uint32 length, then the bytes."""
    out, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidInput(f"Binary data of tensor {name!r} is truncated.", field=name)
        size = int.from_bytes(raw[pos : pos + 4], "little")
        pos += 4
        if pos + size > len(raw):
            raise InvalidInput(f"Binary data of tensor {name!r} is truncated.", field=name)
        try:
            out.append(raw[pos : pos + size].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"Tensor {name!r} holds bytes that are not UTF-8 text.", field=name) from exc
        pos += size
    return out


def v2_binary_body(body: bytes, header_length: str) -> dict[str, Any]:
    """Decode the v2 binary tensor extension (``Inference-Header-Content-Length``): a JSON header, then the
    raw bytes of every input whose ``parameters.binary_data_size`` is set, in order. Returns the JSON body
    with each such input's ``data`` filled in."""
    import orjson

    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length must be a byte count within the body, got {header_length[:20]!r}.", field="Inference-Header-Content-Length"
        )
    split = int(header_length)
    try:
        head = orjson.loads(body[:split])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The JSON header of the binary request is not valid JSON: {exc}.", field="body") from exc
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list):
        raise InvalidInput("The body must be an object with a non-empty 'inputs' list of tensors.", field="inputs")
    pos = split
    for i, tensor in enumerate(head["inputs"]):
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        name = str(tensor.get("name", f"inputs[{i}]"))
        if not isinstance(size, int) or size < 0 or pos + size > len(body):
            raise InvalidInput(f"binary_data_size of tensor {name!r} does not fit the body.", field=name)
        raw = body[pos : pos + size]
        pos += size
        dtype = tensor.get("datatype")
        if dtype == "BYTES":
            tensor["data"] = _decode_bytes_tensor(raw, name)
        elif dtype in _V2_NUMPY:
            width = np.dtype(_V2_NUMPY[dtype]).itemsize
            if size % width:
                raise InvalidInput(f"Binary data of tensor {name!r} is not a whole number of {dtype} values.", field=name)
            tensor["data"] = np.frombuffer(raw, dtype=_V2_NUMPY[dtype]).astype(float if dtype != "BOOL" else bool).tolist()
        else:
            raise InvalidInput(f"Tensor {name!r} has datatype {dtype!r}, which has no binary form.", field=name)
    if pos != len(body):
        raise InvalidInput(f"The body holds {len(body) - pos} bytes that no tensor claims.", field="body")
    return head


def v2_datatype(array: np.ndarray) -> str:
    if array.dtype.kind == "f":
        return "FP64" if array.dtype.itemsize == 8 else "FP32"
    if array.dtype.kind in "iu":
        return "INT64"
    if array.dtype.kind == "b":
        return "BOOL"
    return "BYTES"
