"""Who is calling: API keys (checked against a hashed snapshot held in memory) and JWT bearer tokens
(HS256 under the workspace secret, or RS256 under a configured public key; the algorithm is pinned by the
server's configuration and never read from the token; ``exp``, ``iss``, ``aud`` and ``sub`` are required)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mloop.errors import InvalidInput, Unauthorized
from mloop.roles import ROLES
from mloop.store import ApiKeyRepository, secret_digest, split_key

if TYPE_CHECKING:
    from mloop.security._keyring import Keyring
    from mloop.settings import Settings

MAX_LEEWAY = 60.0


SESSION_COOKIE = "mloop_session"
SESSION_TTL_S = 8 * 3600.0
_SESSION_AUDIENCE = "mloop-ui"


@dataclass(frozen=True)
class Principal:
    """Who is calling; ``csrf`` is the token a state-changing request must echo in ``X-CSRF-Token`` when the
    credential came in a session cookie (empty otherwise)."""

    subject: str
    role: str
    via: Literal["api_key", "jwt", "session"]
    csrf: str = ""


class Authenticator:
    """Checks ``Authorization: Bearer <key or token>``. The key snapshot is refreshed every ``refresh_s`` (so a
    revoked key stops working within that time) and at once, at most twice a second, for an unknown key id."""

    def __init__(
        self,
        keys: ApiKeyRepository,
        *,
        jwt_key: bytes | str,
        algorithm: Literal["HS256", "RS256"] = "HS256",
        issuer: str = "mloop",
        audience: str = "mloop",
        leeway: float = 30.0,
        refresh_s: float = 2.0,
        session_key: bytes | None = None,
    ) -> None:
        if algorithm not in ("HS256", "RS256"):
            raise InvalidInput(f"JWT algorithm must be HS256 or RS256, got {algorithm!r}.", field="jwt_algorithm")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise InvalidInput(f"JWT leeway must be within [0, {MAX_LEEWAY:g}] seconds, got {leeway}.", field="jwt_leeway")
        self._keys = keys
        self._jwt_key = jwt_key
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.refresh_s = refresh_s
        self._session_key = session_key if session_key is not None else secrets.token_bytes(32)
        self._snapshot: dict[str, tuple[str, str, str]] = {}
        self._loaded = 0.0
        self._last_lookup = 0.0
        self._lock = threading.Lock()
        self._lookup_lock = threading.Lock()

    @classmethod
    def configured(cls, settings: Settings, keyring: Keyring, keys: ApiKeyRepository) -> Authenticator:
        """What a server checks bearer credentials with: API keys from the store, JWTs under the workspace
        secret (HS256) or under ``MLOOP_JWT_PUBLIC_KEY`` (RS256)."""
        common: dict[str, Any] = {"issuer": settings.jwt_issuer, "audience": settings.jwt_audience, "leeway": settings.jwt_leeway}
        if settings.jwt_public_key is not None:
            path = Path(settings.jwt_public_key)
            if not path.is_file():
                raise InvalidInput(f"MLOOP_JWT_PUBLIC_KEY: no PEM file at {path}.", field="MLOOP_JWT_PUBLIC_KEY")
            return cls(keys, jwt_key=path.read_text(), algorithm="RS256", session_key=_session_key(keyring), **common)
        return cls(keys, jwt_key=keyring.jwt_secret(), session_key=_session_key(keyring), **common)

    # -- the key snapshot ----------------------------------------------------------------------

    def refresh(self) -> None:
        snapshot = self._keys.active()
        with self._lock:
            self._snapshot, self._loaded = snapshot, time.monotonic()

    @property
    def age(self) -> float:
        return time.monotonic() - self._loaded

    def knows(self, key_id: str) -> bool:
        return key_id in self._snapshot

    def lookup(self, key_id: str) -> None:
        """Fetch one key missing from the snapshot (created since the last refresh). Lookups queue behind one
        lock, one point read per 20 ms at most: a flood of forged ids costs the database at most 50 reads a
        second and slows only the flood. Blocking: call it off the event loop."""
        with self._lookup_lock:
            wait = 0.02 - (time.monotonic() - self._last_lookup)
            if wait > 0:
                time.sleep(wait)
            if key_id in self._snapshot:  # found by a lookup or refresh while this one waited
                return
            self._last_lookup = time.monotonic()
            found = self._keys.find_active(key_id)
            if found is not None:
                with self._lock:
                    self._snapshot = {**self._snapshot, key_id: found}

    # -- checking ------------------------------------------------------------------------------

    def _api_key(self, key: str) -> Principal:
        parts = split_key(key)
        if parts is None:
            raise Unauthorized("Malformed API key.")
        found = self._snapshot.get(parts[0])
        if found is None or not hmac.compare_digest(found[0], secret_digest(parts[1])):
            raise Unauthorized("Unknown or revoked API key.")
        return Principal(found[2], found[1], "api_key")

    def _jwt(self, token: str) -> Principal:
        import jwt

        try:
            claims = jwt.decode(
                token, self._jwt_key, algorithms=[self.algorithm], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}.") from None
        role = claims.get("role")
        if role not in ROLES:
            raise Unauthorized("Invalid token: its role claim is missing or unknown.")
        return Principal(str(claims["sub"]), str(role), "jwt")

    @staticmethod
    def bearer(authorization: str | None) -> str:
        if not authorization:
            raise Unauthorized("Authentication required: send 'Authorization: Bearer <API key or token>'.")
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthorized("Use 'Authorization: Bearer <API key or token>'.")
        return credential.strip()

    def authenticate(self, authorization: str | None) -> Principal:
        return self.check(self.bearer(authorization))

    def check(self, credential: str) -> Principal:
        """The principal behind a bare credential (an API key or a JWT)."""
        return self._api_key(credential) if credential.startswith("mlk_") else self._jwt(credential)

    def mint(self, subject: str, role: str, ttl_s: float = 3600.0) -> str:
        """An HS256 token for ``subject`` with ``role``, valid ``ttl_s`` seconds."""
        import jwt

        if role not in ROLES:
            raise InvalidInput(f"Unknown role {role!r}. Valid: {', '.join(ROLES)}.", field="role")
        if not 0 < ttl_s <= 30 * 86400:
            raise InvalidInput(f"ttl must be within (0, 30 days], got {ttl_s} s.", field="ttl")
        if self.algorithm != "HS256":
            raise InvalidInput("This workspace verifies RS256 tokens: mint them with your identity provider.", field="algorithm")
        now = int(time.time())
        claims = {"sub": subject, "role": role, "iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + int(ttl_s)}
        return str(jwt.encode(claims, self._jwt_key, algorithm="HS256"))

    # -- dashboard sessions --------------------------------------------------------------------

    def open_session(self, credential: str, ttl_s: float = SESSION_TTL_S) -> tuple[str, Principal]:
        """A session for whoever ``credential`` (an API key or a JWT) names: (the cookie's value, its principal).
        The value is an HS256 token under a key of its own (never accepted as a bearer credential), carrying the API
        key's id (a revoked key ends its sessions) and a random CSRF token; a session opened with a JWT ends no later
        than the token."""
        import jwt

        principal = self.check(credential)
        parts = split_key(credential) if credential.startswith("mlk_") else None
        now, csrf = int(time.time()), secrets.token_urlsafe(24)
        expires = now + int(ttl_s)
        if parts is None:  # a token cannot be revoked: its session ends when it does, never later
            expires = min(expires, int(jwt.decode(credential, options={"verify_signature": False})["exp"]))
        claims = {"sub": principal.subject, "role": principal.role, "kid": parts[0] if parts else "", "csrf": csrf,
                  "aud": _SESSION_AUDIENCE, "iat": now, "exp": expires}
        return str(jwt.encode(claims, self._session_key, algorithm="HS256")), Principal(principal.subject, principal.role, "session", csrf)

    def session(self, value: str) -> Principal:
        """The principal of a session cookie's value; ``Unauthorized`` when it is forged, expired, or its key revoked."""
        import jwt

        try:
            claims = jwt.decode(value, self._session_key, algorithms=["HS256"], audience=_SESSION_AUDIENCE,
                                options={"require": ["exp", "sub", "role", "csrf", "aud"]})
        except jwt.PyJWTError:
            raise Unauthorized("Your session has expired or is invalid: sign in again.") from None
        if claims.get("kid") and claims["kid"] not in self._snapshot:
            raise Unauthorized("The API key this session was opened with has been revoked: sign in again.")
        if claims["role"] not in ROLES:
            raise Unauthorized("Invalid session.")
        return Principal(str(claims["sub"]), str(claims["role"]), "session", str(claims["csrf"]))


def _session_key(keyring: Keyring) -> bytes:
    """The key session cookies are signed with: derived from the workspace secret (so every worker of a server, and
    its restarts, accept the same sessions) but distinct from the key of bearer tokens."""
    import hashlib

    return hashlib.sha256(b"mloop-session\0" + keyring.jwt_secret()).digest()


def cookie_value(cookie_header: str | None, name: str = SESSION_COOKIE) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, if any."""
    for part in (cookie_header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            return value
    return None
