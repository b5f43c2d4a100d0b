from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mloop.errors import IntegrityError, InvalidInput, NotFound
from mloop.events import MODEL_ALIAS_CHANGED
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame, train_and_register


def test_register_records_every_file_digest_and_writes_a_card(workspace: Workspace) -> None:
    version = train_and_register(workspace)
    info = workspace.registry.resolve("toy", "champion")
    assert info.version == version == 1 and info.aliases == ("champion",)
    files = workspace.registry.artifact_dir("toy", 1)
    manifest = workspace.store.manifests.get("toy", 1)
    on_disk = sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file())
    assert sorted(manifest) == on_disk and "MLmodel" in manifest and "model.skops" in manifest
    assert info.manifest_sha256 is not None and len(info.manifest_sha256) == 64
    card = workspace.registry.card("toy", 1)
    for expected in ("# Model card: toy v1", "## Data", "toy — 600 rows", "## Features", "| color | string |",
                     "| max_iter | 20 |", "## Metrics", "train_rows", "## Lineage", "scikit-learn", "## Integrity", "model.skops"):
        assert expected in card
    assert workspace.tracker.client.get_model_version("toy", "1").description == card


def test_loaded_model_predicts_like_the_trained_one(workspace: Workspace) -> None:
    train_and_register(workspace)
    model = workspace.registry.load("toy", "champion")
    frame = toy_frame(50, seed=3)
    scores = model.score(frame[TOY_SPEC.features])
    assert scores.shape == (50,) and np.all((scores >= 0) & (scores <= 1))
    assert model.feature_names == ["x1", "x2", "x3", "color"]


@pytest.mark.parametrize("tamper", ["modify", "extra", "remove"])
def test_tampered_artifacts_are_refused(workspace: Workspace, tamper: str) -> None:
    train_and_register(workspace)
    files = workspace.registry.artifact_dir("toy", 1)
    if tamper == "modify":
        target = files / "model.skops"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        match = "does not match its registered SHA-256"
    elif tamper == "extra":
        (files / "evil.pkl").write_bytes(b"cos\nsystem\n")
        match = "not registered: \\['evil.pkl'\\]"
    else:
        (files / "requirements.txt").unlink()
        match = "lacks registered files"
    with pytest.raises(IntegrityError, match=match):
        workspace.registry.load("toy", 1)


def test_symlinked_artifact_is_refused(workspace: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train_and_register(workspace)
    files = workspace.registry.artifact_dir("toy", 1)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    (files / "requirements.txt").unlink()
    (files / "requirements.txt").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symlink|not a regular file"):
        workspace.registry.load("toy", 1)


def test_aliases_move_and_announce_it(workspace: Workspace) -> None:
    train_and_register(workspace)
    train_and_register(workspace, alias="challenger", seed=1)
    before = workspace.bus.last_id()
    workspace.registry.set_alias("toy", "champion", 2)
    assert workspace.registry.resolve("toy", "champion").version == 2
    events = workspace.bus.poll(before)
    assert [(e.topic, e.payload) for e in events] == [(MODEL_ALIAS_CHANGED, {"name": "toy", "alias": "champion", "version": 2})]
    assert [m["aliases"] for m in workspace.registry.list_models()] == [{"champion": 2, "challenger": 2}]
    assert [a.action for a in workspace.store.audit.list(target="toy@champion")] == ["model.alias_set", "model.alias_set"]


def test_unknown_models_versions_and_uris_are_clear_errors(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match="Model 'nope' has no version 'champion'"):
        workspace.registry.resolve("nope", "champion")
    train_and_register(workspace)
    with pytest.raises(NotFound, match="has no version 9"):
        workspace.registry.load("toy", 9)
    with pytest.raises(InvalidInput, match="model_uri must look like 'models:/<model id>'"):
        workspace.registry.register("runs:/abc/model", "toy")
    with pytest.raises(InvalidInput, match="Invalid alias"):
        workspace.registry.set_alias("toy", "bad alias", 1)


def test_a_load_hit_by_cpythons_threaded_ast_race_is_parsed_again(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import mloop.registry._registry as registry_module

    real, failures = registry_module.load_from_dir, []

    def racy(folder: Any, **kw: Any) -> Any:
        if not failures:
            failures.append(1)
            raise SystemError("AST constructor recursion depth mismatch (before=198, after=175)")
        return real(folder, **kw)

    version = train_and_register(workspace)
    monkeypatch.setattr(registry_module, "load_from_dir", racy)
    assert workspace.registry.load("toy", version).version == version and failures == [1]
    monkeypatch.setattr(registry_module, "load_from_dir", lambda folder, **kw: (_ for _ in ()).throw(SystemError("something else")))
    with pytest.raises(InvalidInput, match="could not be loaded: something else"):
        workspace.registry.load("toy", version)
