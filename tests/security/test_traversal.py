"""Path traversal: families of encodings of "../" in every name the server takes from a URL; each one gets a
4xx (or, when the HTTP client resolved the dot segments itself, the answer of an ordinary route) and nothing
outside the workspace is read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mloop.errors import InvalidInput
from mloop.monitoring import LogReader
from mloop.names import check_name
from mloop.server import create_app
from mloop.workspace import Workspace
from tests.conftest import auth_headers, deploy

BASE = ["..", "../etc/passwd", "..\\..\\windows", "%2e%2e%2f%2e%2e%2fetc", "%2e%2e/", "..%2f..%2f", "%252e%252e%252f",
        "%c0%ae%c0%ae%2f", "....//....//", "/etc/passwd", "toy%00.txt", "toy\x00", "#/../../", "?x=../../", ".%2e/", "toy/../../../etc",
        "C:\\Windows\\win.ini", "\\\\server\\share", "..;/", "%2F..%2F..", "toy%2f..%2f..%2fkeys"]
TEMPLATES = ["/v2/models/{}/infer", "/v2/models/{}/ready", "/v2/models/{}/stats", "/v2/models/{}", "/models/{}/invocations",
             "/v2/models/{}/feedback", "/api/monitors/{}/x", "/api/monitors/toy/{}", "/api/keys/{}"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, TestClient]]:
    from tests.conftest import train_and_register

    ws = Workspace.init(tmp_path_factory.mktemp("traversal") / "ws")
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    with TestClient(create_app(ws, monitor_interval=0), headers=auth_headers(ws)) as c:
        yield ws, c
    ws.close()


def test_traversal_variants_in_urls_get_4xx(client: tuple[Workspace, TestClient]) -> None:
    _, c = client
    tried = escapes = 0
    for template in TEMPLATES:
        method = "DELETE" if template.startswith("/api/") else ("POST" if template.endswith(("infer", "invocations", "feedback")) else "GET")
        for variant in BASE:
            if any(ord(ch) < 32 for ch in variant):
                continue  # a raw control character cannot be sent in a URL at all (the names test covers it)
            resp = c.request(method, template.format(variant), json={"inputs": []})
            tried += 1
            # 4xx; or, where the client itself resolved the dot segments (".." → the parent route), that route's answer
            assert 400 <= resp.status_code < 500 or (resp.status_code == 200 and "/.." not in str(resp.url)), (template, variant, resp.status_code)
            escapes += "root:" in resp.text or "[fonts]" in resp.text
    assert escapes == 0
    print(f"\n{tried} traversal variants tried over {len(TEMPLATES)} routes, {escapes} escapes")


@pytest.mark.parametrize("variant", BASE + ["", "a" * 129, ".hidden", "-rf", "a/b", "a b", "é"])
def test_names_refuse_traversal_and_odd_forms(variant: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(variant, "model name")


def test_log_reader_and_registry_refuse_bad_names(client: tuple[Workspace, TestClient]) -> None:
    ws, _ = client
    for bad in ("../toy", "..", "/etc"):
        with pytest.raises(InvalidInput):
            LogReader(ws.logs_dir).count(bad)
        with pytest.raises(InvalidInput):
            ws.registry.artifact_dir(bad, 1)


def test_a_symlinked_artifact_is_refused(client: tuple[Workspace, TestClient]) -> None:
    from mloop.errors import IntegrityError

    ws, _ = client
    folder = ws.registry.artifact_dir("toy", 1)
    link = folder / "MLmodel.link"
    link.symlink_to("/etc/passwd")
    try:
        with pytest.raises(IntegrityError, match="symlink|not a regular file"):
            ws.registry.load("toy", 1)
    finally:
        link.unlink()
