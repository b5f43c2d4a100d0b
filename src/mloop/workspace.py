"""The workspace: one folder (``./.mloop`` by default) and the object that opens every store in it.

It opens stores and nothing more: what is done with them (deploying, rotating keys, registering monitors)
lives with the concept it concerns, and takes only the stores it needs.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.errors import InvalidInput, NotFound
from mloop.files import write_atomic
from mloop.settings import Settings

if TYPE_CHECKING:
    from mloop.events import SqlEventBus
    from mloop.registry import Registry
    from mloop.security import Keyring
    from mloop.store import MetadataStore
    from mloop.tracking import Tracker

_MARKER = "workspace.json"
_FORMAT = 1


def _settings(path: str | Path | None, settings: Settings | None) -> Settings:
    base = settings if settings is not None else Settings()
    return base if path is None else base.model_copy(update={"home": Path(path)})


class Workspace:
    """Every store of one mloop installation.

    Embedded defaults: MLflow on ``sqlite:///<root>/mlflow.db`` with artifacts under ``<root>/artifacts``;
    mloop's metadata on ``sqlite:///<root>/mloop.db``. ``MLOOP_DATABASE_URL`` / ``MLOOP_TRACKING_URI``
    move either to PostgreSQL without changing any code.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home.resolve()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path | None = None, *, settings: Settings | None = None) -> Workspace:
        """Create (or upgrade) a workspace at ``path`` (default ``MLOOP_HOME`` or ``./.mloop``); idempotent.

        Creates the folders, migrates mloop's database, makes the keyring (signing keys, JWT secret) and the
        workspace's own admin API key, and MLflow's tables."""
        from mloop.security import ensure_credential

        ws = cls(_settings(path, settings))
        for folder in (ws.root, ws.artifacts_dir, ws.reports_dir, ws.logs_dir, ws.cards_dir):
            folder.mkdir(parents=True, exist_ok=True)
        ws.store.migrate()
        ensure_credential(ws.keyring, ws.store.api_keys)
        ws.tracker.client.search_experiments(max_results=1)  # creates MLflow's tables on first use
        marker = ws.root / _MARKER
        if not marker.exists():
            write_atomic(marker, json.dumps({"format": _FORMAT}) + "\n")
        ws._check_marker()
        return ws

    @classmethod
    def open(cls, path: str | Path | None = None, *, settings: Settings | None = None) -> Workspace:
        """Open an existing workspace; a clear error says how to create one if there is none."""
        ws = cls(_settings(path, settings))
        if not (ws.root / _MARKER).exists():
            raise NotFound(f"No mloop workspace at {str(ws.root)!r}. Create one with `mloop init {ws.settings.home}`.")
        ws._check_marker()
        return ws

    def _check_marker(self) -> None:
        path = self.root / _MARKER
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path} is not readable JSON ({exc}); it should hold {{\"format\": {_FORMAT}}}.", field=_MARKER) from None
        unknown = sorted(set(data) - {"format"}) if isinstance(data, dict) else ["(not an object)"]
        if unknown:
            raise InvalidInput(f"{path}: unknown key {unknown[0]!r}; the only key is 'format'.", field=f"{_MARKER}.{unknown[0]}")
        if data.get("format") != _FORMAT:
            raise InvalidInput(
                f"{path}: format {data.get('format')!r} is not one this mloop reads ({_FORMAT}); upgrade mloop.", field=f"{_MARKER}.format"
            )

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
    def docs_dir(self) -> Path:
        """Documents written by events (experiment, deployment, drift, pipeline, infra): ``mloop docs list``."""
        return self.root / "docs"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

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

        return Tracker(self.tracking_uri, self.artifacts_dir, self.docs_dir)

    @cached_property
    def registry(self) -> Registry:
        from mloop.registry import Registry

        return Registry(self.tracker, self.store, self.bus, self.cards_dir, self.keyring, docs_dir=self.docs_dir)

    @cached_property
    def keyring(self) -> Keyring:
        """The workspace's secrets in ``<root>/keys`` (created on first use: 0700 folder, 0600 files)."""
        from mloop.security import Keyring

        return Keyring.ensure(self.keys_dir)

    def close(self) -> None:
        """Let cards still being explained be written, then close the metadata store."""
        if "registry" in self.__dict__:
            self.registry.wait_for_cards()
        if "store" in self.__dict__:
            self.store.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
