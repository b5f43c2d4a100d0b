"""``mloop models list|show|export|import`` (``models optimize`` lives in ``_optimize``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mloop.cli._common import JSON_HELP, app, console, open_workspace, print_json, run_operation

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Registered models with their aliases."""
    result = run_operation("models.list")
    if as_json:
        print_json(result)
        return
    if not result.models:
        console.print("no registered models yet: register one with Workspace.registry.register(...), or run `mloop demo`")
        return
    table = Table(title="models")
    for col in ("name", "versions", "latest", "aliases"):
        table.add_column(col)
    for m in result.models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, str(m.versions), f"v{m.latest_version}", aliases)
    console.print(table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "latest",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """One model: its versions and the model card of one version."""
    result = run_operation("models.show", {"name": name, "version": version, "lineage": as_json})
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{name} versions")
    for col in ("version", "aliases", "run", "manifest sha256"):
        table.add_column(col, overflow="fold")
    for v in result.versions:
        table.add_row(f"v{v.version}", ", ".join(v.aliases), v.run_id or "", (v.manifest_sha256 or "")[:16])
    console.print(table)
    console.print(result.card or f"(version {result.version} has no model card)", markup=False, highlight=False)


@models_app.command("export")
def models_export(
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .tar.gz bundle.")],
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
) -> None:
    """Write a model version as a bundle another workspace can import (files + digests, verified on the way out)."""
    ref: str | int = int(version) if version.isdigit() else version
    path = open_workspace().registry.export_bundle(name, ref, output)
    console.print(f"wrote {path}")


@models_app.command("import")
def models_import(
    archive: Path,
    name: Annotated[str | None, typer.Option(help="Register under this name (default: the bundle's).")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
) -> None:
    """Register a bundle as a new version: extracted safely, every digest checked, twin rebuilt, signed with this workspace's key."""
    info = open_workspace().registry.import_bundle(archive, name=name, alias=alias)
    console.print(f"registered {info.name} v{info.version}" + (f" as {alias}" if alias else ""))
