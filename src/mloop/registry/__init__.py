"""Registry: model versions, aliases, SHA-256 manifests, verified loading and model cards."""

from __future__ import annotations

from mloop.registry._card import render_card
from mloop.registry._loaded import ColumnSpec, LoadedModel, load_from_dir
from mloop.registry._registry import ModelVersionInfo, Registry

__all__ = ["ColumnSpec", "LoadedModel", "ModelVersionInfo", "Registry", "load_from_dir", "render_card"]
