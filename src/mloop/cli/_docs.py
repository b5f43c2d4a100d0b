"""Documents: ``mloop docs list|show|open|infra`` — what events wrote (experiment documents, deployment guides, drift
analyses, pipeline documents) and the installation's own document, written on request."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.table import Table

from mloop.cli._common import app, console, open_workspace

docs_app = typer.Typer(help="Documents written by events: experiments, deployments, drift alarms, pipelines; and the installation's.",
                       no_args_is_help=True)
app.add_typer(docs_app, name="docs")


def _store() -> Any:
    from mloop.documents import DocumentStore

    return DocumentStore(open_workspace().docs_dir)


@docs_app.command("list")
def docs_list(kind: Annotated[str | None, typer.Option("--kind", help="experiment, deployment, drift, pipeline or infra.")] = None) -> None:
    """Every document, newest first."""
    found = _store().list(kind)
    if not found:
        console.print("no documents yet: they are written when a run finishes, a model is deployed, a monitor alarms or a "
                      "pipeline runs; `mloop docs infra` writes the installation's")
        return
    table = Table("id", "title", "written")
    for d in found:
        table.add_row(d.id, d.title, d.created)
    console.print(table)


@docs_app.command("show")
def docs_show(doc_id: Annotated[str, typer.Argument(help="<kind>/<name> as `mloop docs list` prints it (a unique prefix will do).")]) -> None:
    """Print a document's Markdown."""
    console.print(_store().get(doc_id).markdown.read_text(encoding="utf-8"), markup=False, highlight=False)


@docs_app.command("open")
def docs_open(doc_id: Annotated[str, typer.Argument(help="<kind>/<name> (a unique prefix will do).")]) -> None:
    """Print the path of a document's HTML page (self-contained, works offline) and open it in a browser if there is one."""
    import webbrowser

    info = _store().get(doc_id)
    console.print(str(info.html), markup=False, highlight=False)
    try:
        opened = webbrowser.open(info.html.as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        console.print("no browser here: open the path above", markup=False, highlight=False)


def _masked(url: str | None, default: str) -> str:
    """A URL with any password hidden."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url) if url else default


def infra_info(ws: Any) -> dict[str, Any]:
    """What the installation document says, read from the workspace and its settings."""
    import mloop

    s, root = ws.settings, ws.root
    postgres = (s.database_url or "").startswith("postgresql") or (s.tracking_uri or "").startswith("postgresql")
    keys = ws.store.api_keys.list()
    active = sum(1 for k in keys if k.revoked_at is None)
    return {
        "workspace": str(root), "version": mloop.__version__,
        "stores": {"tracking and model registry (MLflow)": _masked(s.tracking_uri, f"sqlite:///{root}/mlflow.db"),
                   "model artifacts": str(ws.artifacts_dir), "mloop metadata": _masked(s.database_url, f"sqlite:///{root}/mloop.db"),
                   "online features": _masked(s.online_store, f"sqlite:///{root}/online.db (default)"),
                   "prediction and feedback log": f"{ws.logs_dir} (Parquet segments)", "model cards": str(ws.cards_dir),
                   "documents": str(ws.docs_dir)},
        "transports": {"prediction log": _masked(s.log_transport, "local"), "events": "the metadata database's events table, polled "
                       f"every {s.event_poll_interval:g} s"},
        "security": {"authentication": "on" if s.auth else "off (loopback only)", "API keys": f"{len(keys)} ({active} active)",
                     "JWT issuer / audience": f"{s.jwt_issuer} / {s.jwt_audience}",
                     "JWT public key": str(s.jwt_public_key) if s.jwt_public_key else "none (the workspace's own secret)",
                     "webhook hosts allowed": s.webhook_allow or "none"},
        "files": [("mloop.db", "deployments, monitors, policies, audit log, manifests, feature definitions"),
                  ("mlflow.db", "runs, models, versions, aliases"), ("artifacts/", "model files (verified against signed manifests)"),
                  ("keys/", "signing keys, JWT secret, admin credential — secret: back up encrypted"),
                  ("logs/", "predictions and labels"), ("cards/, docs/, reports/", "what mloop wrote"),
                  ("pipelines/", "the step cache (can be rebuilt by re-running)")],
        "backup": (["pg_dump \"$MLOOP_DATABASE_URL\" > mloop.sql   # and the tracking database, likewise"] if postgres else
                   [f"sqlite3 {root}/mloop.db \".backup mloop.db.bak\"", f"sqlite3 {root}/mlflow.db \".backup mlflow.db.bak\""])
        + [f"tar czf mloop-files.tgz -C {root} artifacts keys logs cards docs"],
        "restore": (["psql \"$MLOOP_DATABASE_URL\" < mloop.sql"] if postgres else
                    [f"cp mloop.db.bak {root}/mloop.db && cp mlflow.db.bak {root}/mlflow.db"])
        + [f"tar xzf mloop-files.tgz -C {root}", "mloop models list   # then load a version: its digests are checked"],
        "postgres": postgres,
    }


@docs_app.command("infra")
def docs_infra() -> None:
    """Write the installation's document (stores, transports, security settings, backup and restore) and print its path."""
    from mloop.documents import DocumentStore, infra_document

    ws = open_workspace()
    info = DocumentStore(ws.docs_dir).write(infra_document(infra_info(ws)))
    console.print(f"{info.id}: {info.markdown} (HTML: {info.html})", markup=False, highlight=False)
