"""HTTPS with TLS 1.3 as the minimum, against a real server process."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mloop.demo._server_process import free_port
from mloop.workspace import Workspace
from tests.conftest import run_cli


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def _handshake(port: int, cert: Path, maximum: ssl.TLSVersion | None = None) -> str:
    context = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        context.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return str(tls.version())


@pytest.mark.slow
def test_https_with_tls13_minimum(workspace: Workspace, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mloop", "--workspace", str(workspace.root), "serve", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        verify = ssl.create_default_context(cafile=str(cert))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"https://127.0.0.1:{port}/v2/health/live", verify=verify, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert _handshake(port, cert) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            _handshake(port, cert, maximum=ssl.TLSVersion.TLSv1_2)
        headers = {"Authorization": f"Bearer {workspace.keyring.credential()}"}
        assert httpx.get(f"https://127.0.0.1:{port}/api/whoami", verify=verify, headers=headers).json()["role"] == "admin"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=2)  # plain HTTP is not served
    finally:
        proc.terminate()
        proc.wait(30)


def test_tls_options_are_checked(workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--workspace", str(workspace.root), "serve"]
    code, _, err = run_cli([*base, "--tls-cert", str(tmp_path / "c.pem")], capsys)
    assert code == 2 and "Give both --tls-cert and --tls-key" in err
    code, _, err = run_cli([*base, "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")], capsys)
    assert code == 2 and "--tls-cert: no file at" in err
