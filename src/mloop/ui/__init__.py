"""The web dashboard served by ``mloop serve`` under ``/ui``: deployments with their live traffic split, latency and
throughput, each rollout's decision statistic against its boundary, monitors with their drift timelines, the loop's
attempts with their evidence, models with cards and lineage, feature freshness and runs paged on the server. One
page, its script and styles in the package (no CDN, works offline), driven by the operations' API."""

from __future__ import annotations

from mloop.ui._routes import CSP, Dashboard, dashboard_routes

__all__ = ["CSP", "Dashboard", "dashboard_routes"]
