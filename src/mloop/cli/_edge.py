"""Edge bundles: ``mloop edge export|assets`` — a registered model as a static folder that scores in a browser
(onnxruntime-web, WebAssembly), offline once served."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from mloop.cli._common import app, console, open_workspace

edge_app = typer.Typer(help="Edge bundles: a model's ONNX twin with onnxruntime-web, as a static page that scores in a browser.",
                       no_args_is_help=True)
app.add_typer(edge_app, name="edge")

ASSETS_HELP = "The onnxruntime-web npm tarball, already downloaded (checked against the pinned integrity): no network needed."


@contextmanager
def _download_progress() -> Iterator[Any]:
    """A progress callback for the asset download, shown only if a download actually starts."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from mloop.optimize._edge import ORT_WEB_URL, ORT_WEB_VERSION

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True) as bar:
        task: list[Any] = []

        def advance(done: int, total: int | None) -> None:
            if not task:
                console.print(f"downloading onnxruntime-web {ORT_WEB_VERSION} from {ORT_WEB_URL} (once; it is cached)", markup=False, highlight=False,
                              soft_wrap=True)
                task.append(bar.add_task("onnxruntime-web", total=total))
            bar.update(task[0], completed=done, total=total)

        yield advance


@edge_app.command("export")
def edge_export(
    model: Annotated[str, typer.Argument(metavar="MODEL[@ALIAS]", help="The model: NAME (its champion), NAME@ALIAS or NAME:VERSION.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="The folder to write the bundle into.")],
    assets: Annotated[Path | None, typer.Option("--assets", metavar="PATH", help=ASSETS_HELP)] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty DIR (files of the same name are replaced).")] = False,
) -> None:
    """Write a static bundle that runs MODEL's verified ONNX twin in a browser: index.html, app.js, model.onnx,
    samples.json and onnxruntime-web's wasm files under ort/. Serve DIR with any static server and open it."""
    from mloop.optimize._edge import export_edge
    from mloop.pipelines._score import parse_ref

    name, ref = parse_ref(model)
    with _download_progress() as progress:
        bundle = export_edge(open_workspace().registry, name, ref, output, assets=assets, force=force, progress=progress)
    console.print(f"{bundle.name} v{bundle.version} → {bundle.dest}: {len(bundle.files)} files, {bundle.size / 1e6:.1f} MB, "
                  f"{bundle.samples} sample row(s)", markup=False, highlight=False, soft_wrap=True)
    console.print(f"serve it: python -m http.server --bind 127.0.0.1 --directory {bundle.dest} 8000, then open http://127.0.0.1:8000/",
                  markup=False, highlight=False, soft_wrap=True)


@edge_app.command("assets")
def edge_assets(assets: Annotated[Path | None, typer.Option("--assets", metavar="PATH", help=ASSETS_HELP + " Copied into the cache.")] = None) -> None:
    """Put the pinned onnxruntime-web tarball in the cache (downloading it once, or copying --assets), so exports
    and tests need no network; prints its path."""
    from mloop.optimize._edge import ensure_assets, seed_cache

    if assets is not None:
        path = seed_cache(assets)
    else:
        with _download_progress() as progress:
            path = ensure_assets(progress=progress)
    console.print(str(path), markup=False, highlight=False, soft_wrap=True)
