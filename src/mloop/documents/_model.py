"""A document as data — a title, its kind and subject, sections of paragraphs, tables, code and figures — rendered
twice from the same content: Markdown with YAML front matter, and one self-contained HTML page (no script, no CDN)."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Cell = str | int | float | None


@dataclass(frozen=True)
class Para:
    """A paragraph; ``code`` spans are written with backticks."""

    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Figure:
    """An inline SVG (HTML only; Markdown says where to see it)."""

    svg: str
    caption: str = ""


Block = Para | Table | Code | Bullets | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    """``kind`` (experiment, deployment, drift, pipeline, infra), ``subject`` (what it is about: a run, a deployment,
    a monitor, a pipeline), ``slug`` (its file name), and its sections."""

    kind: str
    title: str
    subject: str
    slug: str
    sections: list[Section] = field(default_factory=list)
    created: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, title: str, *blocks: Block) -> Section:
        section = Section(title, list(blocks))
        self.sections.append(section)
        return section


def _cell(value: Cell) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(doc: Document) -> str:
    front = {"title": doc.title, "kind": doc.kind, "subject": doc.subject, "created": _when(doc.created), **doc.meta}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {doc.title}", ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Para):
                lines += [block.text, ""]
            elif isinstance(block, Bullets):
                lines += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Code):
                lines += [f"```{block.language}", block.text.rstrip(), "```", ""]
            elif isinstance(block, Table):
                if not block.rows:
                    lines += ["_none_", ""]
                    continue
                lines += ["| " + " | ".join(block.header) + " |", "|" + " --- |" * len(block.header)]
                lines += ["| " + " | ".join(_cell(c).replace("|", "\\|") for c in row) + " |" for row in block.rows] + [""]
            else:
                lines += [f"_{block.caption or 'A figure'}: see the HTML version._", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_STYLE = """body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; padding: 0 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.88rem; } th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f4f4f4; } code, pre { background: #f4f4f4; } pre { padding: 0.6rem; overflow-x: auto; } .meta { color: #555; }"""


def render_html(doc: Document) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(doc.title)} — mloop</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(doc.title)}</h1>",
             f'<p class="meta">{html.escape(doc.kind)} document about <code>{html.escape(doc.subject)}</code>, written {_when(doc.created)} by mloop.</p>']
    for i, section in enumerate(doc.sections):
        parts.append(f'<h2 id="s{i}">{html.escape(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, Para):
                parts.append(f"<p>{_inline(block.text)}</p>")
            elif isinstance(block, Bullets):
                parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
            elif isinstance(block, Code):
                parts.append(f"<pre><code>{html.escape(block.text.rstrip())}</code></pre>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                body = "".join("<tr>" + "".join(f"<td>{_inline(_cell(c))}</td>" for c in row) + "</tr>" for row in block.rows)
                parts.append(f"<table><tr>{head}</tr>{body}</table>" if block.rows else "<p><em>none</em></p>")
            else:
                parts.append(f"<figure>{block.svg}<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
