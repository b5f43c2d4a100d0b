"""Documents written by the events that trigger them — an experiment document when a run finishes, a deployment
guide when a model is deployed, a drift analysis when a monitor alarms, a pipeline document when a pipeline runs,
the installation on request — as Markdown with front matter and self-contained HTML under ``<ws>/docs``."""

from __future__ import annotations

from mloop.documents._model import Bullets, Code, Document, Figure, Para, Section, Table, render_html, render_markdown
from mloop.documents._store import KINDS, DocumentInfo, DocumentStore, slug
from mloop.documents._writers import deployment_guide, drift_analysis, experiment_document, infra_document, pipeline_document

__all__ = [
    "KINDS",
    "Bullets",
    "Code",
    "Document",
    "DocumentInfo",
    "DocumentStore",
    "Figure",
    "Para",
    "Section",
    "Table",
    "deployment_guide",
    "drift_analysis",
    "experiment_document",
    "infra_document",
    "pipeline_document",
    "render_html",
    "render_markdown",
    "slug",
]
