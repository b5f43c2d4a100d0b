"""The model registry on MLflow, plus what MLflow lacks: per-file SHA-256 manifests, verified loading, model cards."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse

import yaml

from mloop.errors import InvalidInput, MloopError, NotFound
from mloop.events import MODEL_ALIAS_CHANGED
from mloop.files import replacing
from mloop.names import check_name
from mloop.registry._card import CardData
from mloop.registry._card_writer import CardWriter, wait_for_cards
from mloop.registry._loaded import EXTRAS_DIR, LoadedModel, load_from_dir, signature_inputs
from mloop.security import Keyring, build_manifest, sign_manifest, verified_copy, verify_manifest

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mloop.events import EventBus
    from mloop.store import MetadataStore
    from mloop.tracking import MlflowCatalog, Tracker, VersionRecord


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered version as mloop sees it."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: tuple[str, ...]
    created_at: float
    manifest_sha256: str | None


def _local_path(location: str) -> Path:
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    raise InvalidInput(
        f"Artifact location {location!r} uses scheme {parsed.scheme!r}; this workspace supports local artifacts (file) only.",
        field="artifact_location",
    )


class Registry:
    """Register versions from runs, move aliases, and load versions only after their digests verify."""

    def __init__(self, tracker: Tracker, store: MetadataStore, bus: EventBus, cards_dir: Path, keyring: Keyring, *,
                 docs_dir: Path | None = None) -> None:
        self.docs_dir = docs_dir  # where use cases above write the documents of what they do (deployment guides)
        self._tracker = tracker
        self._store = store
        self._bus = bus
        self._cards_dir = cards_dir
        self._cards = CardWriter(cards_dir, lambda: self._client)
        self._keyring = keyring

    @property
    def _client(self) -> MlflowClient:
        return self._tracker.client

    # -- reading -----------------------------------------------------------------------------

    def _info(self, mv: Any, aliases: tuple[str, ...] | None = None) -> ModelVersionInfo:
        return ModelVersionInfo(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id,
            source=mv.source,
            aliases=tuple(sorted(mv.aliases or ())) if aliases is None else aliases,
            created_at=(mv.creation_timestamp or 0) / 1000,
            manifest_sha256=(mv.tags or {}).get("mloop.manifest_sha256"),
        )

    @staticmethod
    def _record(r: VersionRecord) -> ModelVersionInfo:
        return ModelVersionInfo(r.name, r.version, r.run_id, r.source, r.aliases, r.created_at, r.tags.get("mloop.manifest_sha256"))

    def resolve(self, name: str, ref: str | int) -> ModelVersionInfo:
        """The version that ``ref`` names: a version number, an alias, or ``latest``."""
        check_name(name, "model name")
        numeric = isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit())
        if not numeric and ref != "latest":
            check_name(ref, "alias")

        def direct(catalog: MlflowCatalog) -> ModelVersionInfo:
            if numeric:
                found = catalog.versions(name, int(ref))
            elif ref == "latest":
                found = catalog.versions(name)[-1:]
                if not found:
                    raise NotFound(f"Model {name!r} has no versions yet.")
            else:
                version = catalog.aliases(name).get(name, {}).get(str(ref))
                found = catalog.versions(name, version) if version is not None else []
            if not found:
                raise NotFound(f"Model {name!r} has no version {ref!r}. See `mloop models show {name}`.")
            return self._record(found[-1])

        return self._tracker.read(direct, lambda: self._resolve_through_client(name, ref, numeric))

    def _resolve_through_client(self, name: str, ref: str | int, numeric: bool) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException

        client = self._client
        try:
            if numeric:
                return self._info(client.get_model_version(name, str(ref)))
            if ref == "latest":
                versions = self.versions(name)
                if not versions:
                    raise NotFound(f"Model {name!r} has no versions yet.")
                return versions[-1]
            return self._info(client.get_model_version_by_alias(name, str(ref)))
        except MlflowException as exc:
            raise NotFound(f"Model {name!r} has no version {ref!r}. See `mloop models show {name}`.") from exc

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of ``name``, oldest first, with its aliases."""
        check_name(name, "model name")
        return self._tracker.read(lambda c: [self._record(r) for r in c.versions(name)], lambda: self._versions_through_client(name))

    def _versions_through_client(self, name: str) -> list[ModelVersionInfo]:
        from mlflow.exceptions import MlflowException

        client = self._client
        try:
            alias_map = client.get_registered_model(name).aliases or {}
        except MlflowException:
            return []
        # search_model_versions leaves aliases empty; the registered model holds them.
        by_version: dict[int, list[str]] = {}
        for alias, version in alias_map.items():
            by_version.setdefault(int(version), []).append(alias)
        found = client.search_model_versions(f"name = '{name}'")
        return sorted(
            (self._info(mv, tuple(sorted(by_version.get(int(mv.version), [])))) for mv in found), key=lambda v: v.version
        )

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model with its newest version and aliases."""

        def direct(catalog: MlflowCatalog) -> list[dict[str, Any]]:
            names, aliases = catalog.model_names(), catalog.aliases()
            versions: dict[str, list[int]] = {}
            for r in catalog.versions():
                versions.setdefault(r.name, []).append(r.version)
            return [
                {"name": n, "latest_version": max(versions[n]) if versions.get(n) else None, "versions": len(versions.get(n, [])),
                 "aliases": aliases.get(n, {})}
                for n in names
            ]

        return self._tracker.read(direct, self._list_models_through_client)

    def _list_models_through_client(self) -> list[dict[str, Any]]:
        out = []
        client, token, models = self._client, None, cast(list[Any], [])
        while True:  # MLflow pages registered models (100 at a time by default)
            page = client.search_registered_models(max_results=1000, page_token=token)
            models.extend(page)
            token = page.token
            if not token:
                break
        for rm in models:
            versions = self._versions_through_client(rm.name)
            out.append(
                {
                    "name": rm.name,
                    "latest_version": versions[-1].version if versions else None,
                    "versions": len(versions),
                    "aliases": {a: int(v) for a, v in (rm.aliases or {}).items()},
                }
            )
        return sorted(out, key=lambda m: m["name"])

    def versions_from_runs(self, run_ids: Collection[str]) -> list[ModelVersionInfo]:
        """Every registered version whose model one of ``run_ids`` made (lineage from runs to models), by name and version."""
        wanted = set(run_ids)

        def through_client() -> list[ModelVersionInfo]:
            return [v for m in self._list_models_through_client() for v in self._versions_through_client(m["name"]) if v.run_id in wanted]

        return self._tracker.read(lambda c: [self._record(r) for r in c.versions() if r.run_id in wanted], through_client)

    def artifact_dir(self, name: str, version: int) -> Path:
        """Where the files of ``name`` version ``version`` live on disk."""
        source = self.resolve(name, version).source
        if source.startswith("models:/"):
            model_id = source.removeprefix("models:/").split("/", 1)[0]
            return _local_path(self._client.get_logged_model(model_id).artifact_location)
        return _local_path(source)

    def card(self, name: str, version: int) -> str:
        """The version's card: Markdown with Hugging Face's YAML front matter."""
        path = self._cards_dir / name / f"v{version}.md"
        if not path.exists():
            raise NotFound(f"No model card for {name!r} version {version}.")
        return path.read_text(encoding="utf-8")

    def card_html(self, name: str, version: int) -> Path:
        """Where the version's card is as a self-contained HTML page."""
        path = self._cards_dir / name / f"v{version}.html"
        if not path.exists():
            raise NotFound(f"No HTML model card for {name!r} version {version} (versions registered before mloop wrote them have none).")
        return path

    # -- writing -----------------------------------------------------------------------------

    def register(self, model_uri: str, name: str, *, alias: str | None = None, onnx: bool = True) -> ModelVersionInfo:
        """Register the logged model ``model_uri`` as a new version of ``name``: build its ONNX twin when the
        model converts and agrees with it (``onnx``), record the SHA-256 of every artifact file, write the
        model card, and point ``alias`` at it when given."""
        from mlflow.exceptions import MlflowException

        check_name(name, "model name")
        if alias is not None:
            check_name(alias, "alias")
        if not model_uri.startswith("models:/"):
            raise InvalidInput(f"model_uri must look like 'models:/<model id>', got {model_uri!r}.", field="model_uri")
        client = self._client
        model_id = model_uri.removeprefix("models:/").split("/", 1)[0]
        try:
            logged = client.get_logged_model(model_id)
        except MlflowException as exc:
            raise NotFound(f"No logged model {model_uri!r} in this workspace.") from exc
        files = _local_path(logged.artifact_location)
        try:  # loaded once, for the twin and the card's explanations
            loaded: LoadedModel | Exception = load_from_dir(files, name=name, version=0)
        except Exception as exc:  # noqa: BLE001 - registering does not need it; the twin and the card say why
            loaded = exc
        twin = _build_twin(files, loaded) if onnx else {"onnx": False, "reason": "not requested"}
        manifest = build_manifest(files)
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # an existing name simply gains a version
                raise
        # The logged model's own location as the source (not models:/<id>, which MLflow's store resolves through
        # its process-wide tracking URI): the registry stays bound to this workspace's store.
        mv = client.create_model_version(
            name, source=logged.artifact_location, run_id=logged.source_run_id, tags={"mloop.logged_model": model_id}
        )
        version = int(mv.version)
        key_id, key = self._keyring.signing_key()
        signature = sign_manifest(key, name, version, manifest)
        with self._store.transaction() as conn:
            digest = self._store.manifests.put(conn, name, version, manifest, signature=signature, key_id=key_id)
            self._store.audit.record(conn, "model.registered", f"{name}/{version}", {"source": model_uri, "manifest_sha256": digest})
        client.set_model_version_tag(name, str(version), "mloop.manifest_sha256", digest)

        run = client.get_run(logged.source_run_id) if logged.source_run_id else None
        inputs = [{"name": c.name, "type": c.type} for c in signature_inputs(files)]
        from mloop.tracking._tracker import FEATURE_VIEW_TAG, FEATURES_ARTIFACT

        features = None
        if run is not None and any(k.startswith(FEATURE_VIEW_TAG) for k in run.data.tags):  # the feature views it was trained on
            try:
                features = self._tracker.read_dict(run.info.run_id, FEATURES_ARTIFACT)
            except NotFound:
                features = None
        data = CardData(
            name=name, version=version, run_id=logged.source_run_id or "", params=dict(run.data.params) if run else {},
            metrics=dict(run.data.metrics) if run else {}, tags=dict(run.data.tags) if run else {}, inputs=inputs, manifest=manifest,
            manifest_sha256=digest, created=time.time(), twin=twin, features=features,
        )
        explains = self._cards.first(data, loaded)
        if alias is not None:
            self.set_alias(name, alias, version)
        info = self.resolve(name, version)
        if explains and isinstance(loaded, LoadedModel):  # off the caller's path, once registering is done: it does not wait
            self._cards.explain_later(data, loaded)
        return info

    def card_deployed(self, name: str, version: int, *, deployment: str, alias: str) -> None:
        """Add (or refresh) a deployment in the version's card: where it is served, under which alias, since when."""
        self._cards.deployed(name, version, deployment=deployment, alias=alias)

    @staticmethod
    def wait_for_cards(timeout: float | None = None) -> None:
        """Wait until every card being explained in this process is written (``mloop run``, the demo and the tests
        call it before they read a card; a process also waits for them before it exits)."""
        wait_for_cards(timeout)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``name@alias`` at ``version`` and tell every server (an event on the bus)."""
        check_name(alias, "alias")
        self.resolve(name, version)  # raises NotFound for an unknown version
        self._client.set_registered_model_alias(name, alias, str(version))
        with self._store.transaction() as conn:
            self._store.audit.record(conn, "model.alias_set", f"{name}@{alias}", {"version": version})
            self._bus.publish(conn, MODEL_ALIAS_CHANGED, {"name": name, "alias": alias, "version": version})

    # -- loading -----------------------------------------------------------------------------

    # -- moving versions between workspaces ------------------------------------------------------

    def export_bundle(self, name: str, ref: str | int, dest: Path) -> Path:
        """Write a version as a ``.tar.gz`` bundle: its files (copied through the same verification as a load)
        and ``bundle.json`` with their digests. The signature stays behind: it is this workspace's key's."""
        import json
        import tarfile

        info = self.resolve(name, ref)
        manifest = self.verified_manifest(name, info.version)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mloop-export-") as tmp:
            model = Path(tmp) / "model"
            verified_copy(self.artifact_dir(name, info.version), manifest, model)
            meta = {"format": BUNDLE_FORMAT, "name": name, "version": info.version, "manifest": manifest}
            (Path(tmp) / "bundle.json").write_text(json.dumps(meta, sort_keys=True))
            with replacing(dest) as partial, tarfile.open(partial, "w:gz") as tar:
                tar.add(Path(tmp) / "bundle.json", arcname="bundle.json")
                tar.add(model, arcname="model")
        return dest

    def import_bundle(self, archive: Path, *, name: str | None = None, alias: str | None = None) -> ModelVersionInfo:
        """Register a bundle from another workspace as a new version here. The archive is extracted with the
        ``data`` filter and entry/size caps; every file must match the bundle's digests (it arrived whole);
        the ONNX twin is rebuilt and checked here, and the manifest is signed with this workspace's key —
        importing is the trust decision, made by whoever runs it."""
        from mloop.security import safe_extract

        with tempfile.TemporaryDirectory(prefix="mloop-import-") as tmp:
            root = Path(tmp)
            safe_extract(archive, root / "bundle")
            meta = _bundle_meta(root / "bundle")
            target = check_name(name or str(meta.get("name", "")), "model name")
            checked = root / "checked"
            verified_copy(root / "bundle" / "model", meta["manifest"], checked)
            import shutil

            shutil.rmtree(checked / EXTRAS_DIR, ignore_errors=True)
            client = self._client
            logged = client.create_logged_model(
                self._tracker.experiment_id("imports"), name=target,
                tags={"mloop.imported_from": f"{meta.get('name')}/v{meta.get('version')}", "mloop.bundle": archive.name},
            )
            client.log_model_artifacts(logged.model_id, str(checked))
            client.finalize_logged_model(logged.model_id, "READY")
        return self.register(f"models:/{logged.model_id}", target, alias=alias)

    def adopt_unsigned(self) -> list[str]:
        """Sign manifests that have no signature (registered before signing existed) after checking that the
        artifact files still match their digests: trust on first use, by an explicit command."""
        kid, key = self._keyring.signing_key()
        adopted = []
        for m in self._store.manifests.all():
            if m.signature:
                continue
            with tempfile.TemporaryDirectory(prefix="mloop-adopt-") as tmp:
                verified_copy(self.artifact_dir(m.model_name, m.version), m.manifest, Path(tmp))
            with self._store.transaction() as conn:
                self._store.manifests.sign(conn, m.model_name, m.version, sign_manifest(key, m.model_name, m.version, m.manifest), kid)
                self._store.audit.record(conn, "keys.adopted", f"{m.model_name}/{m.version}", {"key_id": kid})
            adopted.append(f"{m.model_name}/{m.version}")
        return adopted

    def verified_manifest(self, name: str, version: int) -> dict[str, str]:
        """The stored manifest of a version, after its HMAC signature verified under the workspace key."""
        signed = self._store.manifests.get_signed(name, version)
        key = self._keyring.key(signed.key_id) if signed.key_id else b""
        verify_manifest(key, name, version, signed.manifest, signed.signature)
        return signed.manifest

    def load(self, name: str, ref: str | int = "champion") -> LoadedModel:
        """Load a version after verifying its manifest's signature and checking every file against its
        SHA-256 from the very bytes then loaded; refuse on any mismatch, extra or missing file."""
        info = self.resolve(name, ref)
        manifest = self.verified_manifest(name, info.version)
        src = self.artifact_dir(name, info.version)
        with tempfile.TemporaryDirectory(prefix="mloop-load-") as tmp:
            verified_copy(src, manifest, Path(tmp))
            try:
                return _load(Path(tmp), name, info.version)
            except MloopError:
                raise
            except Exception as exc:
                raise InvalidInput(f"Model {name!r} version {info.version} could not be loaded: {exc}") from exc


def _load(folder: Path, name: str, version: int) -> LoadedModel:
    """``load_from_dir``, once more if CPython 3.11 raised its AST recursion-depth ``SystemError``: ``ast`` used by two
    threads at once trips a shared counter (python/cpython#106905; NumPy parses each array header with it). The
    verified bytes are fine and a second parse succeeds."""
    try:
        return load_from_dir(folder, name=name, version=version)
    except SystemError as exc:
        if "AST constructor recursion depth mismatch" not in str(exc):
            raise
        return load_from_dir(folder, name=name, version=version)


BUNDLE_FORMAT = 1


def _bundle_meta(folder: Path) -> dict[str, Any]:
    import json

    path = folder / "bundle.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"The bundle has no readable bundle.json ({exc}); export bundles with `mloop models export`.", field="archive") from None
    unknown = sorted(set(meta) - {"format", "name", "version", "manifest"}) if isinstance(meta, dict) else []
    if unknown:
        raise InvalidInput(f"bundle.json: unknown key {unknown[0]!r}; a bundle holds format, name, version and manifest.", field="archive")
    manifest = meta.get("manifest") if isinstance(meta, dict) else None
    if meta.get("format") != BUNDLE_FORMAT or not isinstance(manifest, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()):
        raise InvalidInput("bundle.json is not an mloop bundle manifest (format 1 with a manifest of SHA-256 digests).", field="archive")
    return meta


def _build_twin(files: Path, loaded: LoadedModel | Exception) -> dict[str, Any]:
    """Add an ONNX twin to a scikit-learn or PyTorch model folder before its manifest is taken (see ``mloop.optimize``)."""
    import json

    import pandas as pd

    mlmodel = yaml.safe_load((files / "MLmodel").read_text())
    if "onnx" in mlmodel.get("flavors", {}):
        return {"onnx": True, "reason": "the model is an ONNX graph: served as it is"}
    if not {"sklearn", "pytorch"} & set(mlmodel.get("flavors", {})):
        return {"onnx": False, "reason": "only scikit-learn and PyTorch models get an ONNX twin so far"}
    example_file = files / "input_example.json"
    if not example_file.exists():
        return {"onnx": False, "reason": "the model has no input example to check parity on"}
    from mloop.optimize import build_twin

    if isinstance(loaded, Exception):
        raise loaded
    data = json.loads(example_file.read_text())
    example = pd.DataFrame(data["data"], columns=data["columns"])
    return build_twin(loaded.model, loaded.inputs, example, files)
