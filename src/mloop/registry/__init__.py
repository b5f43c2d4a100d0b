"""Registry: model versions, aliases, SHA-256 manifests, verified loading and model cards."""

from __future__ import annotations

from mloop.registry._card import CardData, parse_front_matter, render_card
from mloop.registry._card_html import render_card_html
from mloop.registry._loaded import EXTRAS_DIR, PARITY_FILE, TWIN_FILE, ColumnSpec, LoadedModel, load_from_dir, read_parity_sample
from mloop.registry._registry import ModelVersionInfo, Registry

__all__ = [
    "EXTRAS_DIR",
    "CardData",
    "PARITY_FILE",
    "TWIN_FILE",
    "ColumnSpec",
    "LoadedModel",
    "ModelVersionInfo",
    "Registry",
    "load_from_dir",
    "parse_front_matter",
    "read_parity_sample",
    "render_card",
    "render_card_html",
]
