"""Writes that matter, done one way: a temporary file beside the target, fsynced, renamed over it, and the
folder fsynced, so a crash at any instant leaves the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: Path, *, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (by any writer: Parquet, tarfile, text). When the block
    ends without an error the file is fsynced, given ``mode`` and renamed over ``path``; on an error it is
    removed and ``path`` is untouched.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('hello', ['a.txt'])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) atomically and durably."""
    with replacing(path, mode=mode) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def create_exclusive(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data`` (given ``mode`` before it has a name); ``FileExistsError`` if it
    exists. The file appears whole or not at all, and an existing one is never overwritten, so two
    processes racing keep the first one's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        try:
            os.link(tmp, path)  # fails with FileExistsError instead of replacing
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links: create it exclusively and write it in place
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def read_yaml(path: Path, what: str) -> Any:
    """A YAML (or JSON) file a person wrote (monitors, policies): a missing file or bad syntax is refused naming the
    file, as ``InvalidInput`` on the field ``file``."""
    import yaml

    from mloop.errors import InvalidInput

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"No {what} file at {path}.", field="file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid YAML: {exc}", field="file") from None


def line_of(node: Any, loc: Sequence[Any]) -> int:
    """The 1-based line of the deepest node of the YAML tree that ``loc`` (keys and indexes) reaches."""
    import yaml

    line = 1
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if node is None:  # an unknown key is named by pydantic with its own name: find the key itself
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node.start_mark.line + 1 if node is not None else line
