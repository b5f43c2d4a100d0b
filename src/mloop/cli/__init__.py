"""The ``mloop`` command line."""

from __future__ import annotations

from mloop.cli._app import app, main

__all__ = ["app", "main"]
