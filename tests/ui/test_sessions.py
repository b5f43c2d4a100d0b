"""The dashboard's sign-in and session cookie, through the server's public interface: the cookie's flags, CSRF on every
change made with it, a revoked key ending its sessions, a session never passing as a bearer credential, and the page
served with a strict Content-Security-Policy."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mloop.server import create_app
from mloop.ui import CSP
from mloop.workspace import Workspace


@pytest.fixture
def client(deployed: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(deployed, monitor_interval=0)) as c:
        yield c


def _sign_in(client: TestClient, key: str, **headers: str) -> dict[str, str]:
    answer = client.post("/ui/session", json={"key": key}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_signing_in_sets_an_httponly_strict_cookie_and_changes_need_its_csrf_token(deployed: Workspace, client: TestClient) -> None:
    key, _ = deployed.store.api_keys.create("ops", "operator")
    assert client.get("/ui/session").json() == {"signed_in": False}
    session = _sign_in(client, key)
    cookie = client.cookies.jar
    [set_cookie] = [c for c in cookie if c.name == "mloop_session"]
    assert set_cookie.has_nonstandard_attr("HttpOnly") and set_cookie.get_nonstandard_attr("SameSite") == "Strict" and not set_cookie.secure
    assert key not in set_cookie.value and session["role"] == "operator" and len(session["csrf"]) >= 24
    assert client.get("/ui/session").json()["csrf"] == session["csrf"]
    assert client.get("/api/deployments").status_code == 200  # reads need only the cookie
    plan = "/api/deployments/toy/retrain?dry_run=true"
    assert client.post(plan).status_code == 403  # a change with the cookie alone: what a forged cross-site request could send
    assert client.post(plan, headers={"x-csrf-token": "guess"}).status_code == 403
    assert client.post(plan, headers={"x-csrf-token": session["csrf"]}).status_code == 404  # through: toy has no retraining policy
    assert client.post("/ui/session", json={"key": key}, headers={"origin": "https://mloop.example"}).headers["set-cookie"].endswith("; Secure")
    client.delete("/ui/session")
    assert client.get("/api/deployments").status_code == 401


def test_a_session_dies_with_its_key_and_never_passes_as_a_bearer_credential(deployed: Workspace, client: TestClient) -> None:
    key, row = deployed.store.api_keys.create("temp", "viewer")
    _sign_in(client, key)
    value = client.cookies["mloop_session"]
    assert client.get("/api/whoami", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    assert client.get("/api/whoami").json() == {"subject": "temp", "role": "viewer", "via": "session"}
    deployed.store.api_keys.revoke(row.id)
    deadline = time.monotonic() + 10
    while client.get("/api/whoami").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    answer = client.get("/api/whoami")
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    assert client.get("/ui/session").json()["signed_in"] is False


@pytest.mark.parametrize(("body", "status"), [({"key": "mlk_0123456789ab_forged"}, 401), ({"key": "nope"}, 401), ({}, 422),
                                              ({"key": "x", "role": "admin"}, 422), ("key", 422)])
def test_bad_sign_ins_are_refused_naming_the_problem(client: TestClient, body: object, status: int) -> None:
    answer = client.post("/ui/session", json=body)
    assert answer.status_code == status and "set-cookie" not in answer.headers and answer.json()["error"]


def test_the_page_and_its_assets_come_from_the_package_under_a_strict_policy(client: TestClient) -> None:
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
    assert "<script src=\"ui/assets/app.js\" defer>" in page.text and "http" not in page.text.split("<body>")[0].replace("http-equiv", "")
    assert client.get("/ui/assets/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/assets/..%2Fmcp").status_code == 401  # no such route: a stranger learns nothing
    assert client.get("/ui/assets/index.htm").status_code == 404
    slash = client.get("/ui/", follow_redirects=False)  # a typed trailing slash finds the page, not a 401
    assert slash.status_code == 308 and slash.headers["location"] == "../ui" and client.get("/ui/").text == page.text


def test_a_session_opened_with_a_token_ends_with_it_and_odd_input_is_a_4xx(deployed: Workspace, client: TestClient) -> None:
    import jwt

    from tests.conftest import authenticator

    token = authenticator(deployed).mint("bob", "operator", ttl_s=60)
    _sign_in(client, token)
    session = jwt.decode(client.cookies["mloop_session"], options={"verify_signature": False})
    assert session["exp"] <= jwt.decode(token, options={"verify_signature": False})["exp"]  # never outlives the token
    csrf = client.get("/ui/session").json()["csrf"]
    assert client.post("/api/deployments/toy/retrain?dry_run=true", headers={"x-csrf-token": "é".encode("latin-1")}).status_code == 403  # type: ignore[dict-item]
    assert client.post("/api/deployments/toy/retrain?dry_run=true", headers={"x-csrf-token": csrf}).status_code == 404
    assert client.get("/ui/reports/toy/inputs/²").status_code == 404 and client.get("/api/models/toy?version=²").status_code == 422
    assert client.get(f"/api/models/toy?version={'9' * 30}").status_code == 404  # well formed; no such version
    form = client.post("/ui/session", content=b"key=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 422 and form.json()["field"] == "content-type"
    plain = client.post("/api/deployments?dry_run=true", content=b'{"name": "toy", "model": "toy", "version": 1}',
                        headers={"content-type": "text/plain", "x-csrf-token": csrf})
    assert plain.status_code == 422 and plain.json()["field"] == "content-type"  # what a cross-site form could send
