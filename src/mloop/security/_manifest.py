"""Artifact manifests: the SHA-256 of every file, and a copy that is verified from the very bytes it writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mloop.errors import IntegrityError

_CHUNK = 1 << 20
# MLflow itself writes this file into a model's folder whenever something resolves `models:/<name>/<version>`
# (`mlflow models serve`, `mlflow.pyfunc.load_model`). It names the model and version, is never deserialised by
# mloop, and is neither listed nor copied, so MLflow's own tools can share the store.
MLFLOW_WRITES = frozenset({"registered_model_meta"})


def _files(root: Path) -> dict[str, Path]:
    """Every regular file under ``root`` by its POSIX relative path; symlinks are refused."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                raise IntegrityError(f"Artifact {str(base / name)!r} is a symlink; mloop refuses links in model artifacts.")
        for name in filenames:
            if base == root and name in MLFLOW_WRITES:
                continue
            path = base / name
            if path.is_symlink() or not path.is_file():
                raise IntegrityError(f"Artifact {str(path)!r} is not a regular file; mloop refuses links in model artifacts.")
            found[path.relative_to(root).as_posix()] = path
    return found


def build_manifest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` for every file under ``root``."""
    manifest: dict[str, str] = {}
    for rel, path in sorted(_files(root).items()):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        manifest[rel] = digest.hexdigest()
    return manifest


def verified_copy(src: Path, manifest: dict[str, str], dest: Path) -> None:
    """Copy ``src`` to ``dest``, hashing the bytes as they are written; refuse any extra, missing or changed file.

    The loader then reads ``dest``, which holds exactly the bytes that were checked, so nothing can
    swap a file between the check and the load.
    """
    if not src.is_dir():
        raise IntegrityError(f"Artifact folder {str(src)!r} is missing.")
    present = _files(src)
    extra = sorted(set(present) - set(manifest))
    missing = sorted(set(manifest) - set(present))
    if extra:
        raise IntegrityError(f"Artifact folder {str(src)!r} holds files that were not registered: {extra}.")
    if missing:
        raise IntegrityError(f"Artifact folder {str(src)!r} lacks registered files: {missing}.")
    dest_root = dest.resolve()
    for rel, path in present.items():
        target = (dest_root / rel).resolve()
        if dest_root not in target.parents:
            raise IntegrityError(f"Artifact path {rel!r} escapes its folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with path.open("rb") as fh, target.open("wb") as out:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != manifest[rel]:
            raise IntegrityError(
                f"Artifact {rel!r} does not match its registered SHA-256 "
                f"(expected {manifest[rel][:12]}…, found {digest.hexdigest()[:12]}…); refusing to load it."
            )
