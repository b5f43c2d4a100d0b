"""Extracting archives someone else made: ``tarfile``'s ``data`` filter (no absolute paths, no ``..``, no
links out of the folder, no devices, sane permissions) plus caps on the number of entries and on the bytes
they unpack to, checked before anything is written."""

from __future__ import annotations

import tarfile
from pathlib import Path

from mloop.errors import InvalidInput

MAX_MEMBERS = 10_000
MAX_BYTES = 4 * 1024**3


def safe_extract(archive: Path, dest: Path, *, max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES) -> list[str]:
    """Extract ``archive`` (tar, optionally gzip/bz2/xz) into the empty-or-new folder ``dest``; returns the
    regular files written, relative to ``dest``. Refuses links of any kind, devices, paths that leave ``dest``,
    more than ``max_members`` entries or more than ``max_bytes`` in all."""
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInput(f"{archive} is not a readable tar archive: {exc}", field="archive") from None
    with tar:
        members = []
        total = 0
        for count, member in enumerate(tar, start=1):  # streamed: a bomb of headers stops at the cap
            if count > max_members:
                raise InvalidInput(f"{archive} holds more than {max_members} entries; refused.", field="archive")
            if not (member.isfile() or member.isdir()):
                raise InvalidInput(f"{archive}: entry {member.name!r} is a link or special file; refused.", field="archive")
            total += max(member.size, 0)
            if total > max_bytes:
                raise InvalidInput(f"{archive} unpacks to more than {max_bytes} bytes; refused.", field="archive")
            members.append(member)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for member in members:
            target = (root / member.name).resolve()
            if not target.is_relative_to(root):
                raise InvalidInput(f"{archive}: entry {member.name!r} would land outside the destination; refused.", field="archive")
        try:
            tar.extractall(root, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise InvalidInput(f"{archive}: {exc}; refused.", field="archive") from None
    return sorted(m.name for m in members if m.isfile())
