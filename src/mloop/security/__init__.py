"""Security: artifact manifests, their signatures and verified loading; the workspace keyring; authentication."""

from __future__ import annotations

from mloop.roles import ROLES, Role, role_allows
from mloop.security._archive import safe_extract
from mloop.security._auth import SESSION_COOKIE, Authenticator, Principal, cookie_value
from mloop.security._keyring import Keyring
from mloop.security._manifest import build_manifest, verified_copy
from mloop.security._rotation import ensure_credential, rotate_signing_key
from mloop.security._signing import sign_manifest, verify_manifest

__all__ = [
    "SESSION_COOKIE", "cookie_value",
    "ROLES",
    "Authenticator",
    "Keyring",
    "Principal",
    "Role",
    "build_manifest",
    "ensure_credential",
    "role_allows",
    "rotate_signing_key",
    "safe_extract",
    "sign_manifest",
    "verified_copy",
    "verify_manifest",
]
