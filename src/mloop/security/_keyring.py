"""The workspace's secrets, in ``<ws>/keys/`` (folder 0700, files 0600, created with O_EXCL so an existing
file is never overwritten): HMAC keys that sign model manifests (rotatable) and the JWT secret (HS256)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import time
from pathlib import Path

from mloop.errors import IntegrityError, NotFound
from mloop.files import create_exclusive, write_atomic

SIGNING = "signing.json"
JWT = "jwt.secret"
CREDENTIAL = "admin.key"


def _new_key() -> dict[str, object]:
    return {"secret": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(), "created": time.time()}


class Keyring:
    """Read and rotate the keys of one workspace."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def ensure(cls, folder: Path) -> Keyring:
        """The keyring at ``folder``, creating what is missing (a fresh workspace gets fresh random keys)."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        for name, make in ((SIGNING, lambda: {"active": "k1", "keys": {"k1": _new_key()}}), (JWT, None)):
            path = folder / name
            if path.exists():
                continue
            data = json.dumps(make()).encode() if make else base64.urlsafe_b64encode(secrets.token_bytes(32))
            with contextlib.suppress(FileExistsError):  # another process made it first: keep theirs
                create_exclusive(path, data)
        return cls(folder)

    def _signing(self) -> dict[str, object]:
        path = self.folder / SIGNING
        if not path.exists():
            raise NotFound(f"No signing keys at {path}; `mloop init` creates them.")
        data: dict[str, object] = json.loads(path.read_text())
        return data

    def signing_key(self) -> tuple[str, bytes]:
        """The active key: (its id, its secret)."""
        data = self._signing()
        kid = str(data["active"])
        return kid, self.key(kid)

    def key(self, kid: str) -> bytes:
        keys = self._signing()["keys"]
        assert isinstance(keys, dict)
        if kid not in keys:
            raise IntegrityError(f"Signing key {kid!r} is not in this workspace's keyring: the signature cannot be trusted.")
        return base64.urlsafe_b64decode(str(keys[kid]["secret"]))

    def key_ids(self) -> list[str]:
        keys = self._signing()["keys"]
        assert isinstance(keys, dict)
        return sorted(keys)

    def add_signing_key(self) -> str:
        """Add a new key and make it active (the old ones stay until :meth:`drop`); returns its id."""
        data = self._signing()
        keys = data["keys"]
        assert isinstance(keys, dict)
        kid = f"k{max(int(k[1:]) for k in keys) + 1}"
        keys[kid] = _new_key()
        data["active"] = kid
        write_atomic(self.folder / SIGNING, json.dumps(data).encode(), mode=0o600)
        return kid

    def drop(self, kid: str) -> None:
        data = self._signing()
        keys = data["keys"]
        assert isinstance(keys, dict)
        if kid == data["active"]:
            raise IntegrityError(f"Key {kid!r} is the active signing key; rotate first.")
        keys.pop(kid, None)
        write_atomic(self.folder / SIGNING, json.dumps(data).encode(), mode=0o600)

    def jwt_secret(self) -> bytes:
        path = self.folder / JWT
        if not path.exists():
            raise NotFound(f"No JWT secret at {path}; `mloop init` creates it.")
        return path.read_bytes().strip()

    def has_credential(self) -> bool:
        return (self.folder / CREDENTIAL).exists()

    def credential(self) -> str:
        """The workspace's own admin API key (``admin.key``): how the CLI, the demo and tests call a server."""
        path = self.folder / CREDENTIAL
        if not path.exists():
            raise NotFound(f"No credential at {path}; `mloop init` creates one.")
        return path.read_text().strip()

    def store_credential(self, key: str) -> bool:
        """Keep ``key`` as the workspace credential unless one exists already (then False: the caller drops its key)."""
        try:
            create_exclusive(self.folder / CREDENTIAL, key.encode())
        except FileExistsError:
            return False
        return True
