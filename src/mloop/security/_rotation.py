"""Use cases of the workspace's keys: its own admin credential, and rotating the manifest-signing key."""

from __future__ import annotations

from mloop.security._keyring import Keyring
from mloop.security._signing import sign_manifest, verify_manifest
from mloop.store import ApiKeyRepository, MetadataStore


def ensure_credential(keyring: Keyring, keys: ApiKeyRepository) -> None:
    """Give the workspace its own admin API key (``keys/admin.key``) unless it has one; if another process
    made one at the same moment, keep theirs and revoke ours."""
    if keyring.has_credential():
        return
    key, row = keys.create("workspace", "admin")
    if not keyring.store_credential(key):
        keys.revoke(row.id)


def rotate_signing_key(keyring: Keyring, store: MetadataStore) -> tuple[str, int]:
    """A new signing key: every manifest is verified under its old key and re-signed under the new one in one
    transaction, then the old keys are dropped. Returns (new key id, manifests re-signed).

    Nothing is laundered: if any current signature fails to verify, nothing changes."""
    old_ids = keyring.key_ids()
    signed = store.manifests.all()
    for m in signed:
        verify_manifest(keyring.key(m.key_id) if m.key_id else b"", m.model_name, m.version, m.manifest, m.signature)
    kid = keyring.add_signing_key()
    key = keyring.key(kid)
    with store.transaction() as conn:
        for m in signed:
            store.manifests.sign(conn, m.model_name, m.version, sign_manifest(key, m.model_name, m.version, m.manifest), kid)
        store.audit.record(conn, "keys.rotated", "signing", {"new": kid, "resigned": len(signed)})
    for old in old_ids:
        keyring.drop(old)
    return kid, len(signed)
