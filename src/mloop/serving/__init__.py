"""Serving: the HTTP app (MLflow scoring, Open Inference Protocol v2), the model hub and the server runner."""

from __future__ import annotations

from mloop.serving._app import create_app
from mloop.serving._hub import ModelHub, Served
from mloop.serving._server import serve

__all__ = ["ModelHub", "Served", "create_app", "serve"]
