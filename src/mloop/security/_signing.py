"""HMAC-SHA256 signatures over model manifests: the digests that loading checks are themselves checked, so
whoever can write the metadata database but lacks the workspace key cannot bless a swapped artifact."""

from __future__ import annotations

import hashlib
import hmac
import json

from mloop.errors import IntegrityError


def _message(name: str, version: int, manifest: dict[str, str]) -> bytes:
    return json.dumps({"name": name, "version": int(version), "manifest": manifest}, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(key: bytes, name: str, version: int, manifest: dict[str, str]) -> str:
    """The hex HMAC-SHA256 of the canonical (name, version, manifest) under ``key``.

    >>> sign_manifest(b"k" * 32, "m", 1, {"a": "00"}) == sign_manifest(b"k" * 32, "m", 1, {"a": "00"})
    True
    >>> sign_manifest(b"k" * 32, "m", 1, {"a": "00"}) == sign_manifest(b"k" * 32, "m", 2, {"a": "00"})
    False
    """
    return hmac.new(key, _message(name, version, manifest), hashlib.sha256).hexdigest()


def verify_manifest(key: bytes, name: str, version: int, manifest: dict[str, str], signature: str | None) -> None:
    """Raise ``IntegrityError`` unless ``signature`` is the manifest's (compared in constant time)."""
    if not signature:
        raise IntegrityError(
            f"Model {name!r} version {version} has an unsigned manifest (registered before signing existed). "
            "If you trust its files as they are now, sign it with `mloop keys adopt`."
        )
    if not hmac.compare_digest(sign_manifest(key, name, version, manifest), signature):
        raise IntegrityError(f"The manifest signature of model {name!r} version {version} does not verify: refusing to load it.")
