"""Signed manifests: verified before anything is deserialised; tampering anywhere is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from mloop.errors import IntegrityError
from mloop.store._records import manifest_digest
from mloop.store._schema import model_manifests
from mloop.workspace import Workspace
from tests.conftest import rotate_signing_key, run_cli

pytestmark = pytest.mark.slow  # each test trains, registers and tampers with its own workspace


def _model_file(ws: Workspace) -> Path:
    folder = ws.registry.artifact_dir("toy", 1)
    return next(p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".skops", ".onnx", ".pkl"))


def _edit_manifest(ws: Workspace, change: dict[str, str]) -> None:
    """Rewrite the stored manifest as someone with database access but no key would (digest column kept consistent)."""
    manifest = {**ws.store.manifests.get("toy", 1), **change}
    with ws.store.transaction() as conn:
        conn.execute(sa.update(model_manifests).where(model_manifests.c.model_name == "toy").values(
            manifest=json.dumps(manifest, sort_keys=True), manifest_sha256=manifest_digest(manifest)))


def test_keys_are_private_files(deployed: Workspace) -> None:
    folder = deployed.root / "keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_swapped_file_with_a_rewritten_manifest_is_refused(deployed: Workspace) -> None:
    target = _model_file(deployed)
    target.write_bytes(target.read_bytes() + b"\0")
    rel = target.relative_to(deployed.registry.artifact_dir("toy", 1)).as_posix()
    import hashlib

    _edit_manifest(deployed, {rel: hashlib.sha256(target.read_bytes()).hexdigest()})
    with pytest.raises(IntegrityError, match="signature of model 'toy' version 1 does not verify"):
        deployed.registry.load("toy", 1)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda ws, conn: conn.execute(sa.update(model_manifests).values(signature="0" * 64)),
        lambda ws, conn: conn.execute(sa.update(model_manifests).values(key_id="k99")),
        lambda ws, conn: conn.execute(sa.update(model_manifests).values(signature=None)),
        lambda ws, conn: conn.execute(sa.update(model_manifests).values(version=2)),
    ],
    ids=["forged-signature", "unknown-key", "stripped-signature", "moved-to-another-version"],
)
def test_signature_tampering_is_refused(deployed: Workspace, tamper) -> None:  # type: ignore[no-untyped-def]
    with deployed.store.transaction() as conn:
        tamper(deployed, conn)
    with pytest.raises(Exception) as info:
        deployed.registry.load("toy", 1)
    assert type(info.value).__name__ in ("IntegrityError", "NotFound")


def test_rotation_resigns_and_drops_the_old_key(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    before = deployed.store.manifests.get_signed("toy", 1)
    code, out, _ = run_cli(["--workspace", str(deployed.root), "keys", "rotate"], capsys)
    assert code == 0 and "signing key k2 active; 1 manifest(s) re-signed" in out
    after = deployed.store.manifests.get_signed("toy", 1)
    assert after.key_id == "k2" and after.signature != before.signature
    assert deployed.keyring.key_ids() == ["k2"]
    assert deployed.registry.load("toy", 1).version == 1


def test_rotation_refuses_to_launder_a_tampered_manifest(deployed: Workspace) -> None:
    _edit_manifest(deployed, {"extra-file": "0" * 64})
    with pytest.raises(IntegrityError, match="does not verify"):
        rotate_signing_key(deployed.keyring, deployed.store)
    assert deployed.keyring.key_ids() == ["k1"]  # nothing changed


def test_adopting_unsigned_manifests_checks_the_files(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    with deployed.store.transaction() as conn:
        conn.execute(sa.update(model_manifests).values(signature=None, key_id=None))
    with pytest.raises(IntegrityError, match="unsigned manifest"):
        deployed.registry.load("toy", 1)
    code, out, _ = run_cli(["--workspace", str(deployed.root), "keys", "adopt"], capsys)
    assert code == 0 and "1 manifest(s) signed: toy/1" in out
    assert deployed.registry.load("toy", 1).version == 1
    with deployed.store.transaction() as conn:
        conn.execute(sa.update(model_manifests).values(signature=None, key_id=None))
    target = _model_file(deployed)
    os.truncate(target, 3)
    code, _, err = run_cli(["--workspace", str(deployed.root), "keys", "adopt"], capsys)
    assert code == 1 and "does not match its registered SHA-256" in err


def test_a_tampered_new_version_is_refused_and_the_server_keeps_the_old_one(deployed: Workspace) -> None:
    import time

    from fastapi.testclient import TestClient

    from mloop.serving import create_app
    from tests.conftest import TOY_SPEC, auth_headers, toy_frame, train_and_register

    rows = toy_frame(2)[list(TOY_SPEC.features)]
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    with TestClient(create_app(deployed, poll_interval=0.05, monitor_interval=0), headers=auth_headers(deployed)) as client:
        assert client.post("/invocations", json=body).headers["x-model-version"] == "1"
        v2 = train_and_register(deployed, alias=None, seed=3)
        target = next(p for p in sorted(deployed.registry.artifact_dir("toy", v2).rglob("*.skops")))
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte, after registration
        target.write_bytes(bytes(data))
        deployed.registry.set_alias("toy", "champion", v2)
        time.sleep(1.0)  # the hub hears the alias move, tries v2, refuses it
        resp = client.post("/invocations", json=body)
        assert resp.status_code == 200 and resp.headers["x-model-version"] == "1"
