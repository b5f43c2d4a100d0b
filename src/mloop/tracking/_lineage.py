"""Lineage captured with every run: code version, environment and seeds."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = (
    "mloop", "mlflow", "scikit-learn", "lightgbm", "numpy", "pandas", "pyarrow", "scipy",
    "river", "optuna", "duckdb", "skops", "pandera",
)


@dataclass(frozen=True)
class CodeVersion:
    """The git commit of ``repo`` and a hash of its uncommitted changes (``None`` when clean or not in git)."""

    repo: str | None
    commit: str | None
    dirty_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.decode(errors="replace") if out.returncode == 0 else None


def code_version(cwd: Path | None = None) -> CodeVersion:
    """Read the git state of ``cwd`` (default: the current directory)."""
    cwd = Path.cwd() if cwd is None else cwd
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top is None:
        return CodeVersion(repo=None, commit=None, dirty_sha256=None)
    commit = _git(["rev-parse", "HEAD"], cwd)
    diff = _git(["diff", "HEAD", "--binary"], cwd) if commit else _git(["diff", "--binary"], cwd)
    untracked = _git(["ls-files", "--others", "--exclude-standard"], cwd) or ""
    dirty = (diff or "") + untracked
    return CodeVersion(
        repo=top.strip(),
        commit=commit.strip() if commit else None,
        dirty_sha256=hashlib.sha256(dirty.encode()).hexdigest() if dirty.strip() else None,
    )


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the packages that shape a model."""
    packages: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": packages,
    }
