"""Finding Ray: a quick probe of an address (Ray itself retries for minutes before it gives up) and the address of a
Ray already running on this machine. Shared by the pipelines' ``--ray`` and data-parallel training; Ray is imported
inside the functions only."""

from __future__ import annotations

import os
import socket

from mloop.errors import InvalidInput

PROBE_SECONDS = 3.0


def probe(address: str, field: str = "--ray") -> None:
    """Refuse, quickly and naming ``field``, an address that is malformed or where nothing listens."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInput(f"{field} takes auto or a cluster's HOST:PORT (or ray://HOST:PORT), got {address!r}.", field=field)
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise InvalidInput(f"{field} {address}: no Ray cluster answers there ({exc}). Start one with `ray start --head` and pass "
                           f"the address it prints, or use auto for a local Ray.", field=field) from None


def running_local() -> str | None:
    """The address of a Ray started on this machine (``RAY_ADDRESS`` or ``ray start``) that still answers, else None."""
    found = os.environ.get("RAY_ADDRESS")
    if not found:
        try:
            from ray._private.services import find_bootstrap_address

            found = find_bootstrap_address(None)
        except Exception:  # a private helper: when it moves, a fresh local Ray is started instead
            return None
    if not found:
        return None
    try:
        probe(found)
    except InvalidInput:
        return None
    return found
