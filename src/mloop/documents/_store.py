"""Documents on disk: ``<ws>/docs/<kind>/<slug>.md`` and ``.html`` beside it, each written atomically; the listing is
read from the files' own front matter (no second index to fall out of step)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mloop.documents._model import Document, render_html, render_markdown
from mloop.errors import InvalidInput, NotFound
from mloop.files import write_atomic

KINDS = ("experiment", "deployment", "drift", "pipeline", "infra")


@dataclass(frozen=True)
class DocumentInfo:
    """A written document: its id (``<kind>/<slug>``), title, subject, when, and its two files."""

    id: str
    kind: str
    title: str
    subject: str
    created: str
    markdown: Path
    html: Path


def slug(*parts: str) -> str:
    """A file-safe name from its parts."""
    text = "-".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:120] or "document"


class DocumentStore:
    """The documents of one workspace (``folder``: ``<ws>/docs``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, doc: Document) -> DocumentInfo:
        if doc.kind not in KINDS:
            raise InvalidInput(f"Unknown document kind {doc.kind!r}. Valid: {', '.join(KINDS)}.", field="kind")
        if not doc.created:
            doc.created = time.time()
        base = self.folder / doc.kind / doc.slug
        write_atomic(base.with_suffix(".html"), render_html(doc))
        write_atomic(base.with_suffix(".md"), render_markdown(doc))
        return self._info(base.with_suffix(".md"))

    def _info(self, path: Path) -> DocumentInfo:
        text = path.read_text(encoding="utf-8")
        end = text.find("\n---", 4)
        front = yaml.safe_load(text[4:end]) if text.startswith("---\n") and end > 0 else {}
        kind = path.parent.name
        return DocumentInfo(f"{kind}/{path.stem}", kind, str(front.get("title", path.stem)), str(front.get("subject", "")),
                            str(front.get("created", "")), path, path.with_suffix(".html"))

    def list(self, kind: str | None = None) -> list[DocumentInfo]:
        """Every document (of ``kind``), newest first."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"Unknown document kind {kind!r}. Valid: {', '.join(KINDS)}.", field="kind")
        if not self.folder.exists():
            return []
        paths = sorted(self.folder.glob(f"{kind or '*'}/*.md"), key=lambda p: p.stat().st_mtime, reverse=True)
        return [self._info(p) for p in paths if p.parent.name in KINDS]

    def get(self, doc_id: str) -> DocumentInfo:
        """A document by id (``<kind>/<slug>``), or by a unique prefix of it."""
        kind, _, name = doc_id.partition("/")
        if kind not in KINDS or not name or "/" in name or name.startswith("."):
            raise InvalidInput(f"A document id is <kind>/<name> with kind one of {', '.join(KINDS)}; got {doc_id!r}.", field="id")
        exact = self.folder / kind / f"{name}.md"
        if exact.exists():
            return self._info(exact)
        found = sorted(self.folder.glob(f"{kind}/{name}*.md")) if (self.folder / kind).exists() else []
        if len(found) == 1:
            return self._info(found[0])
        raise NotFound(f"No document {doc_id!r}" + (f" (it matches {len(found)}: be more precise)." if found else "; `mloop docs list` lists them."))
