"""What the OpenAPI document says about request bodies (the handlers read raw bytes and parse them
themselves) and about the error shape every route shares."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every error: a message saying what was wrong and what to do, and the field it concerns when there is one."""

    error: str
    field: str | None = None


_ERRORS = {
    400: "Malformed request.",
    401: "No valid credential (send Authorization: Bearer <API key or token>).",
    403: "The credential's role may not call this route.",
    404: "No such deployment, model, key or monitor.",
    409: "Conflicts with the current state, or an artifact failed its integrity check.",
    413: "Body over the size limit.",
    422: "The input broke a rule; the field is named.",
    429: "The deployment's queue is full; retry after Retry-After seconds.",
    503: "Not ready: loading, or shutting down.",
    504: "The request's deadline passed before it was computed.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()}


_CELL: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}
MLFLOW_BODY: dict[str, Any] = {
    "type": "object",
    "description": "One of MLflow's scoring formats.",
    "minProperties": 1,
    "maxProperties": 2,
    "properties": {
        "dataframe_split": {
            "type": "object",
            "required": ["columns", "data"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "data": {"type": "array", "items": {"type": "array", "items": _CELL}, "minItems": 1},
            },
        },
        "dataframe_records": {"type": "array", "items": {"type": "object", "additionalProperties": _CELL}, "minItems": 1},
        "instances": {"type": "array", "minItems": 1},
        "inputs": {},
        "params": {"type": "object"},
    },
    "additionalProperties": False,
}
V2_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {
                        "type": "string",
                        "enum": ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64", "BYTES"],
                    },
                    "data": {"type": "array"},
                    "parameters": {"type": "object"},
                },
            },
        },
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
    },
}
FEEDBACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "labels"],
    "properties": {"request_id": {"type": "string", "minLength": 1}, "labels": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
    "additionalProperties": False,
}

EXPLAIN_BODY: dict[str, Any] = {
    "description": "An Open Inference Protocol infer body (parameters.method: auto, tree, permutation, kernel, lime or integrated_gradients), or one of "
                   "MLflow's scoring formats (params.method).",
    "anyOf": [V2_BODY, MLFLOW_BODY],
}
