"""Authentication and the route table: every route and method is covered, each role gets exactly what the
table says, and no mutated token is accepted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from fastapi.testclient import TestClient

from mloop.roles import ROLES
from mloop.security import role_allows
from mloop.server import create_app
from mloop.serving._routes import RouteTable
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, auth_headers, authenticator, deploy, run_cli, toy_frame

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, TestClient]]:
    from tests.conftest import train_and_register

    ws = Workspace.init(tmp_path_factory.mktemp("access") / "ws")
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    with TestClient(create_app(ws, monitor_interval=0)) as client:
        yield ws, client
    ws.close()


def _concrete(template: str) -> str:
    return template.replace("{name}", "toy").replace("{key_id}", "0123456789ab").replace("{deployment}", "toy")


def _table(client: TestClient) -> RouteTable:
    return client.app.table  # type: ignore[attr-defined, no-any-return]  # the Gateway in front of FastAPI


def _routes(client: TestClient) -> list[tuple[str, str, str | None]]:
    return [(r.method, r.path, r.role) for r in _table(client).routes]


def test_the_framework_serves_exactly_the_table(served: tuple[Workspace, TestClient]) -> None:
    _, client = served
    fastapi_app = client.app.app  # type: ignore[attr-defined]
    framework = {(m, r.path) for r in fastapi_app.routes for m in getattr(r, "methods", set()) if m != "HEAD"}
    declared = {(m, p) for m, p, _ in _routes(client)}
    assert framework == declared, f"only in FastAPI: {sorted(framework - declared)}; only in the table: {sorted(declared - framework)}"
    fast = {(r.method, r.path) for r in _table(client).routes if r.fast}
    assert fast == {("POST", "/invocations"), ("POST", "/models/{name}/invocations"), ("POST", "/v2/models/{name}/infer"),
                    ("POST", "/v2/models/{name}/feedback"), ("POST", "/v2/features/{service}/online"), ("POST", "/v2/models/{name}/explain")}
    public = {(m, p) for m, p, role in _routes(client) if role is None}
    assert public == {("GET", "/health/live"), ("GET", "/v2/health/live"), ("GET", "/health/ready"), ("GET", "/v2/health/ready"), *DASHBOARD}


def test_nothing_but_the_probes_answers_without_a_valid_credential(served: tuple[Workspace, TestClient]) -> None:
    _, client = served
    public = {(m, p) for m, p, role in _routes(client) if role is None}
    public_paths = {(m, _concrete(p)) for m, p in public}
    paths = sorted({_concrete(p) for _, p, _ in _routes(client)} | {"/", "/nope", "/v2/models/toy/../../keys", "/api/keys/"})
    checked = 0
    for path in paths:
        for method in METHODS:
            bad = ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer mlk_0123456789ab_forged"})
            for headers in bad:
                status = client.request(method, path, headers=headers, follow_redirects=False).status_code
                checked += 1
                if (method, path) in public_paths:
                    assert status == PUBLIC_STATUS.get((method, path), 200), (method, path, headers, status)
                else:
                    assert status == 401, (method, path, headers, status)
    print(f"\n{checked} unauthenticated (route × method × credential) requests, {len(public)} public routes")


#: The dashboard's public routes: its page and assets (no data), and the session (signing in, out, and asking whether one is).
DASHBOARD = {("GET", "/ui"), ("GET", "/ui/"), ("GET", "/ui/assets/{name}"), ("POST", "/ui/session"), ("GET", "/ui/session"), ("DELETE", "/ui/session")}
#: What the public routes answer a stranger when not 200: signing in without a body names the missing key; no asset is called "toy"; /ui/ redirects to /ui.
PUBLIC_STATUS = {("GET", "/ui/"): 308, ("POST", "/ui/session"): 422, ("GET", "/ui/assets/toy"): 404}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_the_table_says(served: tuple[Workspace, TestClient], role: str) -> None:
    ws, client = served
    key, _ = ws.store.api_keys.create(f"test-{role}", role)
    headers = {"Authorization": f"Bearer {key}"}
    for method, template, needed in _routes(client):
        if needed is None:
            continue
        if method == "DELETE" and template == "/api/keys/{key_id}":
            continue  # revoking would invalidate other tests' keys; covered below
        status = client.request(method, _concrete(template), headers=headers, json={}).status_code
        if role_allows(role, needed):
            assert status not in (401, 403), (role, method, template, status)
        else:
            assert status == 403, (role, method, template, status)


def test_no_escalation_by_mass_assignment_or_self_service(served: tuple[Workspace, TestClient]) -> None:
    ws, client = served
    operator, row = ws.store.api_keys.create("op", "operator")
    as_operator = {"Authorization": f"Bearer {operator}"}
    assert client.post("/api/keys", json={"name": "mine", "role": "admin"}, headers=as_operator).status_code == 403
    assert client.delete(f"/api/keys/{row.id}", headers=as_operator).status_code == 403
    admin = auth_headers(ws)
    for extra in ({"id": "0123456789ab"}, {"secret_sha256": "0" * 64}, {"revoked_at": None}, {"created_at": 0}):
        resp = client.post("/api/keys", json={"name": "x", "role": "viewer", **extra}, headers=admin)
        assert resp.status_code == 422, extra
    assert client.post("/api/keys", json={"name": "x", "role": "root"}, headers=admin).status_code == 422
    created = client.post("/api/keys", json={"name": "x", "role": "viewer"}, headers=admin)
    assert created.status_code == 201 and created.json()["key"].startswith("mlk_")
    new = {"Authorization": f"Bearer {created.json()['key']}"}
    assert client.get("/api/whoami", headers=new).json() == {"subject": "x", "role": "viewer", "via": "api_key"}
    assert client.delete(f"/api/keys/{created.json()['id']}", headers=admin).status_code == 200
    assert client.get("/api/whoami", headers=new).status_code == 401  # revoked: refused at once


def test_keys_are_stored_hashed(served: tuple[Workspace, TestClient]) -> None:
    ws, _ = served
    key, row = ws.store.api_keys.create("hashed", "viewer")
    secret = key.split("_", 2)[2]
    db = (ws.root / "mloop.db").read_bytes() + b"".join(p.read_bytes() for p in ws.root.glob("mloop.db-wal"))
    assert secret.encode() not in db and row.id.encode() in db


def _token(ws: Workspace, **claims: object) -> str:
    now = int(time.time())
    base = {"sub": "alice", "role": "viewer", "iss": "mloop", "aud": "mloop", "iat": now, "exp": now + 600}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, ws.keyring.jwt_secret(), algorithm="HS256")


def _hs256_raw(claims: dict[str, object], key: bytes) -> str:
    """An HS256 token signed by hand (PyJWT itself refuses to use a PEM key as an HMAC secret)."""
    import hashlib
    import hmac
    import json

    enc = jwt.utils.base64url_encode
    signing_input = enc(b'{"alg":"HS256","typ":"JWT"}') + b"." + enc(json.dumps(claims).encode())
    return (signing_input + b"." + enc(hmac.new(key, signing_input, hashlib.sha256).digest())).decode()


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_jwt_mutations_are_all_refused(served: tuple[Workspace, TestClient]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    ws, client = served
    secret = ws.keyring.jwt_secret()
    now = int(time.time())
    good = _token(ws)
    header, payload, signature = good.split(".")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    forged_payload = jwt.utils.base64url_encode(b'{"sub":"alice","role":"admin","iss":"mloop","aud":"mloop","exp":9999999999}').decode()
    mutations = {
        "alg none": jwt.encode({"sub": "a", "role": "admin", "iss": "mloop", "aud": "mloop", "exp": now + 600}, None, algorithm="none"),
        "wrong secret": jwt.encode({"sub": "a", "role": "admin", "iss": "mloop", "aud": "mloop", "exp": now + 600}, b"x" * 32, algorithm="HS256"),
        "RS256 signed by an outsider": jwt.encode({"sub": "a", "role": "admin", "iss": "mloop", "aud": "mloop", "exp": now + 600}, rsa_key, algorithm="RS256"),
        "HS256 keyed with a public key": _hs256_raw({"sub": "a", "role": "admin", "iss": "mloop", "aud": "mloop", "exp": now + 600}, public_pem),
        "HS512 under the right secret": jwt.encode({"sub": "a", "role": "admin", "iss": "mloop", "aud": "mloop", "exp": now + 600}, secret, algorithm="HS512"),
        "expired": _token(ws, exp=now - 120),
        "expired within 61 s": _token(ws, exp=now - 61),
        "no exp": _token(ws, exp=None),
        "no sub": _token(ws, sub=None),
        "no aud": _token(ws, aud=None),
        "no iss": _token(ws, iss=None),
        "wrong issuer": _token(ws, iss="evil"),
        "wrong audience": _token(ws, aud="other"),
        "unknown role": _token(ws, role="superadmin"),
        "no role": _token(ws, role=None),
        "payload swapped": f"{header}.{forged_payload}.{signature}",
        "signature stripped": f"{header}.{payload}.",
        "truncated": good[:-5],
        "garbage": "a.b.c",
    }
    accepted = [name for name, token in mutations.items()
                if client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"}).status_code != 401]
    assert accepted == []
    print(f"\n{len(mutations)} JWT mutations tried, {len(accepted)} accepted")
    ok = client.get("/api/whoami", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200 and ok.json() == {"subject": "alice", "role": "viewer", "via": "jwt"}
    assert client.get("/api/whoami", headers={"Authorization": f"Bearer {_token(ws, exp=now - 20)}"}).status_code == 200  # leeway 30 s
    assert client.post("/invocations", json={}, headers={"Authorization": f"Bearer {good}"}).status_code == 403


def test_cli_keys_and_tokens_work_against_the_server(served: tuple[Workspace, TestClient], capsys: pytest.CaptureFixture[str]) -> None:
    ws, client = served
    base = ["--workspace", str(ws.root)]
    code, out, err = run_cli([*base, "auth", "create-key", "--role", "predictor", "--name", "batch-job"], capsys)
    key = out.strip()
    assert code == 0 and key.startswith("mlk_") and "shown only now" in err
    rows = toy_frame(2)[list(TOY_SPEC.features)]
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    assert client.post("/invocations", json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    code, out, _ = run_cli([*base, "auth", "token", "--role", "operator", "--subject", "bob", "--ttl", "60"], capsys)
    token = out.strip()
    assert client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "operator"
    code, out, _ = run_cli([*base, "auth", "list-keys"], capsys)
    assert code == 0 and "batch-job" in out and key.split("_", 2)[2] not in out
    code, _, err = run_cli([*base, "auth", "create-key", "--role", "root"], capsys)
    assert code == 2 and "role: Input should be 'viewer', 'predictor', 'operator' or 'admin'" in err
    code, _, err = run_cli([*base, "auth", "token", "--role", "viewer", "--ttl", "0"], capsys)
    assert code == 2


def test_role_lookup_in_the_table(served: tuple[Workspace, TestClient]) -> None:
    table = _table(served[1])

    def role(method: str, path: str) -> str | None:
        found = table.match(method, path)
        return found[0].role if found else "no route"

    assert role("POST", "/v2/models/m/infer") == "predictor"
    assert role("GET", "/v2/models/m/x/stats") == "no route"
    assert role("GET", "/v2/models//stats") == "no route"  # a parameter is one non-empty segment
    assert role("DELETE", "/api/monitors/a/b") == "admin"
    assert role("GET", "/health/ready") is None


def test_rs256_tokens_under_a_configured_public_key(tmp_path: object, monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = Path(str(tmp_path)) / "idp.pem"
    pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.setenv("MLOOP_JWT_PUBLIC_KEY", str(pem))
    monkeypatch.setenv("MLOOP_JWT_ISSUER", "https://idp.example")
    monkeypatch.setenv("MLOOP_JWT_AUDIENCE", "mloop-prod")
    ws = Workspace.open(workspace.root)
    now = int(time.time())
    claims = {"sub": "svc", "role": "predictor", "iss": "https://idp.example", "aud": "mloop-prod", "exp": now + 600}
    with TestClient(create_app(ws, monitor_interval=0)) as client:
        def who(token: str) -> int:
            return client.get("/api/whoami", headers={"Authorization": f"Bearer {token}"}).status_code

        assert who(jwt.encode(claims, private, algorithm="RS256")) == 200
        assert who(jwt.encode(claims, ws.keyring.jwt_secret(), algorithm="HS256")) == 401  # the algorithm is pinned to RS256
        assert who(_hs256_raw(claims, pem.read_bytes())) == 401  # the public key used as an HMAC secret
        assert who(jwt.encode({**claims, "iss": "mloop"}, private, algorithm="RS256")) == 401
        assert who(jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")) == 401
    with pytest.raises(Exception, match="mint them with your identity provider"):
        authenticator(ws).mint("x", "viewer")


def test_leeway_is_capped(monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    from mloop.errors import InvalidInput

    monkeypatch.setenv("MLOOP_JWT_LEEWAY", "120")
    with pytest.raises(InvalidInput, match=r"MLOOP_JWT_LEEWAY: Input should be less than or equal to 60") as info:
        authenticator(Workspace.open(workspace.root))
    assert info.value.field == "MLOOP_JWT_LEEWAY"


def test_a_key_revoked_elsewhere_is_refused_within_the_refresh_interval(served: tuple[Workspace, TestClient]) -> None:
    ws, client = served
    key, row = ws.store.api_keys.create("revoked-elsewhere", "viewer")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/whoami", headers=headers).status_code == 200
    ws.store.api_keys.revoke(row.id)  # as `mloop auth revoke` from another process would: this server is not told
    started = time.monotonic()
    while client.get("/api/whoami", headers=headers).status_code == 200 and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert client.get("/api/whoami", headers=headers).status_code == 401
    assert time.monotonic() - started < 2.0 + 1.0  # the documented bound (2 s refresh) plus slack for this machine
