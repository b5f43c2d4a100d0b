"""Alarm webhooks, checked on the address they resolve to: loopback is allowed (local use), other hosts only
when named in the allow-list (``MLOOP_WEBHOOK_ALLOW``); link-local addresses (cloud metadata) never."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from mloop.errors import InvalidInput

log = logging.getLogger("mloop.monitoring")

Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_webhook(url: str, allow: Collection[str] = (), *, resolve: Resolver = _resolve) -> list[str]:
    """The addresses ``url`` resolves to, if every one of them may be called; otherwise ``InvalidInput``
    saying why. A host on ``allow`` (exact host name or IP) may resolve to private addresses; link-local
    and unspecified addresses are refused even then."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Webhook {url!r} must be an http(s) URL with a host.", field="webhooks")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise InvalidInput(f"Webhook host {host!r} does not resolve ({exc}).", field="webhooks") from None
    if not addresses:
        raise InvalidInput(f"Webhook host {host!r} does not resolve.", field="webhooks")
    allowed = host.lower() in {a.lower() for a in allow}
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if address.is_link_local or address.is_unspecified or address.is_multicast:
            raise InvalidInput(
                f"Webhook {host!r} resolves to {address}, a link-local/unspecified address (cloud metadata lives there); refused.", field="webhooks"
            )
        if address.is_loopback or allowed:
            continue
        raise InvalidInput(
            f"Webhook host {host!r} ({address}) is neither loopback nor on the allow-list; add it to MLOOP_WEBHOOK_ALLOW to permit it.",
            field="webhooks",
        )
    return addresses


def deliver(url: str, payload: dict[str, Any], allow: Collection[str] = (), *, attempts: int = 3, timeout: float = 5.0) -> bool:
    """POST ``payload`` as JSON to ``url`` after checking where it points; retried with backoff on errors and
    5xx; redirects are not followed (they could point anywhere). True when a 2xx came back."""
    import httpx

    try:
        check_webhook(url, allow)
    except InvalidInput as exc:
        log.warning("webhook refused: %s", exc.message)
        return False
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                response = client.post(url, json=payload, headers={"User-Agent": "mloop-monitor"})
            if 200 <= response.status_code < 300:
                return True
            if response.status_code < 500:
                log.warning("webhook %s answered %s; not retried", url, response.status_code)
                return False
        except httpx.HTTPError as exc:
            log.warning("webhook %s failed (attempt %d): %s", url, attempt, exc)
        if attempt < attempts:
            time.sleep(delay)
            delay *= 2
    return False
