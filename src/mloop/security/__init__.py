"""Security: artifact manifests and verified loading (authentication and signing deepen in later work)."""

from __future__ import annotations

from mloop.security._manifest import build_manifest, verified_copy

__all__ = ["build_manifest", "verified_copy"]
