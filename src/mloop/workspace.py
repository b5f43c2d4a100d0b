"""The workspace: one folder (``./.mloop`` by default) and the object that opens every store in it."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import NotFound
from mloop.settings import Settings

if TYPE_CHECKING:
    from mloop.events import SqlEventBus
    from mloop.monitoring import MonitorConfig, MonitorMetrics, MonitorRunner
    from mloop.store import MonitorRow
    from mloop.monitoring import MonitorConfig, MonitorMetrics, MonitorRunner
    from mloop.store import MonitorRow
    from mloop.registry import Registry
    from mloop.security import Authenticator, Keyring
    from mloop.store import Deployment, MetadataStore, ServingConfig
    from mloop.tracking import Tracker

_MARKER = "workspace.json"
_FORMAT = 1


class Workspace:
    """Every store of one mloop installation.

    Embedded defaults: MLflow on ``sqlite:///<root>/mlflow.db`` with artifacts under ``<root>/artifacts``;
    mloop's metadata on ``sqlite:///<root>/mloop.db``. ``MLOOP_DATABASE_URL`` / ``MLOOP_TRACKING_URI``
    move either to PostgreSQL without changing any code.
    """

    def __init__(self, root: Path, settings: Settings | None = None) -> None:
        self.root = root.resolve()
        self.settings = settings or Settings(home=root)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path | None = None) -> Workspace:
        """Create (or upgrade) a workspace at ``path`` (default ``MLOOP_HOME`` or ``./.mloop``); idempotent."""
        settings = Settings() if path is None else Settings(home=Path(path))
        ws = cls(settings.home, settings)
        for folder in (ws.root, ws.artifacts_dir, ws.reports_dir, ws.logs_dir, ws.cards_dir):
            folder.mkdir(parents=True, exist_ok=True)
        ws.store.migrate()
        ws.keyring  # noqa: B018 - creates the workspace's keys (0600) on first init
        ws._ensure_credential()
        ws.tracker.client.search_experiments(max_results=1)  # creates MLflow's tables on first use
        marker = ws.root / _MARKER
        if not marker.exists():
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(json.dumps({"format": _FORMAT}) + "\n")
            os.replace(tmp, marker)
        return ws

    @classmethod
    def open(cls, path: str | Path | None = None) -> Workspace:
        """Open an existing workspace; a clear error says how to create one if there is none."""
        settings = Settings() if path is None else Settings(home=Path(path))
        ws = cls(settings.home, settings)
        if not (ws.root / _MARKER).exists():
            raise NotFound(f"No mloop workspace at {str(ws.root)!r}. Create one with `mloop init {settings.home}`.")
        return ws

    # -- places ------------------------------------------------------------------------------

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def cards_dir(self) -> Path:
        return self.root / "cards"

    @property
    def database_url(self) -> str:
        return self.settings.database_url or f"sqlite:///{self.root / 'mloop.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.settings.tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    # -- stores ------------------------------------------------------------------------------

    @cached_property
    def store(self) -> MetadataStore:
        from mloop.store import MetadataStore

        return MetadataStore(self.database_url)

    @cached_property
    def bus(self) -> SqlEventBus:
        from mloop.events import SqlEventBus

        return SqlEventBus(self.store.engine)

    @cached_property
    def tracker(self) -> Tracker:
        from mloop.tracking import Tracker

        return Tracker(self.tracking_uri, self.artifacts_dir)

    @cached_property
    def registry(self) -> Registry:
        from mloop.registry import Registry

        return Registry(self.tracker, self.store, self.bus, self.cards_dir, self.keyring)

    @cached_property
    def keyring(self) -> Keyring:
        """The workspace's secrets in ``<root>/keys`` (created on first use: 0700 folder, 0600 files)."""
        from mloop.security import Keyring

        return Keyring.ensure(self.root / "keys")

    # -- authentication ----------------------------------------------------------------------

    def _ensure_credential(self) -> None:
        if self.keyring.has_credential():
            return
        key, row = self.store.api_keys.create("workspace", "admin")
        if not self.keyring.store_credential(key):  # another process initialised it first: drop ours
            self.store.api_keys.revoke(row.id)

    @property
    def credential(self) -> str:
        """The workspace's own admin API key (``<root>/keys/admin.key``, 0600): how the CLI and the demo call a server."""
        return self.keyring.credential()

    def authenticator(self) -> Authenticator:
        """What a server checks bearer credentials with: API keys from the store, JWTs under the workspace secret
        (HS256) or under ``MLOOP_JWT_PUBLIC_KEY`` (RS256)."""
        from mloop.security import Authenticator

        s = self.settings
        if s.jwt_public_key is not None:
            return Authenticator(self.store.api_keys, jwt_key=Path(s.jwt_public_key).read_text(), algorithm="RS256",
                                 issuer=s.jwt_issuer, audience=s.jwt_audience, leeway=s.jwt_leeway)
        return Authenticator(self.store.api_keys, jwt_key=self.keyring.jwt_secret(), issuer=s.jwt_issuer,
                             audience=s.jwt_audience, leeway=s.jwt_leeway)

    def rotate_signing_key(self) -> tuple[str, int]:
        """A new signing key; every manifest is verified under its old key and re-signed under the new one in
        one transaction, then the old keys are dropped. Returns (new key id, manifests re-signed)."""
        from mloop.security import sign_manifest, verify_manifest

        old_ids = self.keyring.key_ids()
        signed = self.store.manifests.all()
        for m in signed:  # refuse to launder: every current signature must verify before anything changes
            verify_manifest(self.keyring.key(m.key_id) if m.key_id else b"", m.model_name, m.version, m.manifest, m.signature)
        kid = self.keyring.add_signing_key()
        key = self.keyring.key(kid)
        with self.store.transaction() as conn:
            for m in signed:
                self.store.manifests.sign(conn, m.model_name, m.version, sign_manifest(key, m.model_name, m.version, m.manifest), kid)
            self.store.audit.record(conn, "keys.rotated", "signing", {"new": kid, "resigned": len(signed)})
        for old in old_ids:
            self.keyring.drop(old)
        return kid, len(signed)

    def adopt_unsigned(self) -> list[str]:
        """Sign manifests that have no signature (registered before signing existed) after checking that the
        artifact files still match their digests: trust on first use, by an explicit command."""
        import tempfile

        from mloop.security import sign_manifest, verified_copy

        kid, key = self.keyring.signing_key()
        adopted = []
        for m in self.store.manifests.all():
            if m.signature:
                continue
            with tempfile.TemporaryDirectory(prefix="mloop-adopt-") as tmp:
                verified_copy(self.registry.artifact_dir(m.model_name, m.version), m.manifest, Path(tmp))
            with self.store.transaction() as conn:
                self.store.manifests.sign(conn, m.model_name, m.version, sign_manifest(key, m.model_name, m.version, m.manifest), kid)
                self.store.audit.record(conn, "keys.adopted", f"{m.model_name}/{m.version}", {"key_id": kid})
            adopted.append(f"{m.model_name}/{m.version}")
        return adopted

    # -- deployments -------------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        model_name: str,
        alias: str = "champion",
        *,
        rollout: dict[str, Any] | None = None,
        serving: ServingConfig | None = None,
    ) -> Deployment:
        """Serve ``models:/<model_name>@<alias>`` as deployment ``name`` (created or replaced).

        ``serving`` sets batching, queue, deadline and missing-value rules; ``None`` keeps the current ones.
        A version whose ONNX twin disagrees with it on its parity sample is refused (``Conflict``).
        """
        from mloop.events import DEPLOYMENT_CHANGED

        # Every version this deployment will serve must exist and, if it has an ONNX twin, agree with it.
        self.registry.check_twin(model_name, alias)
        if rollout and rollout.get("candidate_alias"):
            self.registry.check_twin(model_name, str(rollout["candidate_alias"]))
        with self.store.transaction() as conn:
            dep = self.store.deployments.upsert(conn, name, model_name=model_name, alias=alias, rollout=rollout, serving=serving)
            self.store.audit.record(
                conn, "deployment.updated", name,
                {"model": model_name, "alias": alias, "rollout": rollout, "serving": dep.serving.to_dict()},
            )
            self.bus.publish(conn, DEPLOYMENT_CHANGED, {"name": name, "revision": dep.revision})
        return dep

    def deployments(self) -> list[Deployment]:
        return self.store.deployments.list()

    # -- monitors ----------------------------------------------------------------------------

    def add_monitor(self, config: MonitorConfig | dict[str, Any]) -> MonitorRow:
        """Create or replace a monitor of an existing deployment; a reference file is resolved to an
        absolute path now, so that a server started elsewhere finds it. A changed config restarts its windows."""
        from mloop.errors import InvalidInput
        from mloop.monitoring import parse_monitor

        parsed = parse_monitor(config) if isinstance(config, dict) else config
        self.store.deployments.get(parsed.deployment)
        data = parsed.model_dump(exclude_defaults=False)
        if parsed.reference is not None and parsed.reference.path is not None:
            path = Path(parsed.reference.path).expanduser().resolve()
            if not path.is_file():
                raise InvalidInput(f"reference.path: no file at {path}.", field="reference.path")
            data["reference"]["path"] = str(path)
        return self.store.monitors.put(parsed.deployment, parsed.name, data)

    def monitor_runner(self, metrics: MonitorMetrics | None = None) -> MonitorRunner:
        """What evaluates this workspace's monitors (the server's scheduler, or ``mloop monitors run``)."""
        from mloop.monitoring import MonitorRunner

        return MonitorRunner(self.store, self.bus, self.logs_dir, self.reports_dir, metrics=metrics, webhook_allow=self.settings.webhook_hosts)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
