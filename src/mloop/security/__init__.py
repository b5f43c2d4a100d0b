"""Security: artifact manifests, their signatures and verified loading; the workspace keyring; authentication."""

from __future__ import annotations

from mloop.security._archive import safe_extract
from mloop.security._auth import Authenticator, Principal, role_allows
from mloop.security._keyring import Keyring
from mloop.security._manifest import build_manifest, verified_copy
from mloop.security._signing import sign_manifest, verify_manifest

__all__ = ["Authenticator", "Keyring", "Principal", "role_allows", "build_manifest", "sign_manifest", "verified_copy", "safe_extract", "verify_manifest"]
