"""The dashboard's routes: the page and its assets (public: they hold no data), signing in with an API key for an
HttpOnly, SameSite=Strict session cookie (and signing out), who the session is, and the drift reports the monitors
wrote. Everything the page shows comes from the operations' API under ``/api`` with that cookie; a change also
sends the session's CSRF token, which the gateway checks."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from mloop.errors import InvalidInput, NotFound
from mloop.security import SESSION_COOKIE
from mloop.serving._replies import Reply, json_reply
from mloop.serving._routes import Call, Hooks, Route

#: Scripts and styles only from the server itself, nothing inline, no frames: a page that cannot be made to run
#: another origin's code or be framed by one.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: A report is static HTML with inline styles and SVG: no script may run on the dashboard's origin from it.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8", "index.html": "text/html; charset=utf-8"}
_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-cache"}


def _asset(name: str) -> bytes:
    return (resources.files("mloop.ui") / "static" / name).read_bytes()


class Dashboard:
    """The routes of ``/ui`` for a server of ``workspace``; ``authenticator`` None when it runs without authentication."""

    def __init__(self, workspace: Any, authenticator: Any) -> None:
        self.workspace = workspace
        self.authenticator = authenticator
        self.assets = {name: _asset(name) for name in ASSETS}

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/ui", None, self.page, summary="The dashboard (sign in with an API key)."),
            Route("GET", "/ui/", None, self.to_page, summary="The dashboard's address with a trailing slash: a redirect to /ui."),
            Route("GET", "/ui/assets/{name}", None, self.asset, summary="The dashboard's script and styles (in the package; no CDN)."),
            Route("POST", "/ui/session", None, self.sign_in, summary="Sign in with an API key: an HttpOnly, SameSite=Strict session cookie.",
                  body={"type": "object", "required": ["key"], "additionalProperties": False,
                        "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 4096}}}),
            Route("GET", "/ui/session", None, self.whoami,
                  summary="Whether the caller is signed in; if so its subject, role, and the CSRF token its changes must send."),
            Route("DELETE", "/ui/session", None, self.sign_out, summary="Sign out: the session cookie is cleared."),
            Route("GET", "/ui/reports/{deployment}/{monitor}/{window}", "viewer", self.report,
                  summary="The drift report a monitor wrote for one window (self-contained HTML)."),
        ]

    async def page(self, call: Call) -> Reply:
        return Reply(200, self.assets["index.html"], {"content-type": ASSETS["index.html"], **_HEADERS})

    async def to_page(self, call: Call) -> Reply:
        return Reply(308, b"", {"location": "../ui", **_HEADERS})  # relative: right under a proxy's root path too

    async def asset(self, call: Call) -> Reply:
        name = call.params["name"]
        if name not in ASSETS or name == "index.html":
            raise NotFound(f"No dashboard asset {name!r}.")
        return Reply(200, self.assets[name], {"content-type": ASSETS[name], **_HEADERS})

    @staticmethod
    def _cookie(call: Call, value: str, max_age: int) -> str:
        """The session cookie; ``Secure`` when the page was served over HTTPS (its ``Origin`` says so, behind a proxy too)."""
        secure = "; Secure" if call.headers.get("origin", "").startswith("https://") else ""
        return f"{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"

    async def sign_in(self, call: Call) -> Reply:
        if not call.headers.get("content-type", "").startswith("application/json"):  # a form post from another site cannot sign you in
            raise InvalidInput("Sign in with a JSON body: content-type application/json, {\"key\": \"<API key>\"}.", field="content-type")
        try:
            body = orjson.loads(call.body or b"{}")
        except orjson.JSONDecodeError:
            raise InvalidInput("The body must be JSON: {\"key\": \"<API key>\"}.", field="body") from None
        key = body.get("key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key.strip() or len(key) > 4096 or set(body) != {"key"}:
            raise InvalidInput("key: give the API key (or token) to sign in with, and nothing else.", field="key")
        if self.authenticator is None:  # loopback without authentication: nothing to sign in to
            return json_reply({"signed_in": True, "subject": "anonymous", "role": "admin", "via": "no-auth", "csrf": ""})
        auth, key = self.authenticator, key.strip()
        if key.startswith("mlk_") and not auth.knows(key.split("_", 2)[1]):
            await asyncio.to_thread(auth.lookup, key.split("_", 2)[1])
        value, principal = auth.open_session(key)
        return json_reply({"signed_in": True, "subject": principal.subject, "role": principal.role, "via": "session", "csrf": principal.csrf},
                          headers={"set-cookie": self._cookie(call, value, 8 * 3600), "cache-control": "no-store"})

    async def whoami(self, call: Call) -> Reply:
        """Public, so that the page learns whether to show the sign-in form without a failed request: the session cookie
        is checked here (a bearer credential too), and anything missing, expired or revoked is ``signed_in: false``."""
        if self.authenticator is None:
            return json_reply({"signed_in": True, "subject": "anonymous", "role": "admin", "via": "no-auth", "csrf": ""})
        from mloop.errors import Unauthorized
        from mloop.security import cookie_value

        try:
            value = cookie_value(call.headers.get("cookie"))
            if value is not None:
                p = self.authenticator.session(value)
            elif call.headers.get("authorization"):
                p = self.authenticator.authenticate(call.headers["authorization"])
            else:
                return json_reply({"signed_in": False}, headers={"cache-control": "no-store"})
        except Unauthorized as exc:
            return json_reply({"signed_in": False, "reason": exc.message}, headers={"cache-control": "no-store"})
        return json_reply({"signed_in": True, "subject": p.subject, "role": p.role, "via": p.via, "csrf": p.csrf},
                          headers={"cache-control": "no-store"})

    async def sign_out(self, call: Call) -> Reply:
        return json_reply({"signed_out": True}, headers={"set-cookie": self._cookie(call, "", 0)})

    async def report(self, call: Call) -> Reply:
        from mloop.names import check_name

        deployment, monitor, window = (call.params[k] for k in ("deployment", "monitor", "window"))
        check_name(deployment, "deployment name")
        check_name(monitor, "monitor name")
        if not re.fullmatch(r"[0-9]{1,12}", window):  # window ids are numbers: nothing else names a report
            raise NotFound(f"No report for window {window!r} of {deployment}/{monitor} (window ids are numbers).")
        path = Path(self.workspace.reports_dir) / "monitors" / deployment / monitor / f"window-{int(window):06d}.html"
        if not path.is_file():
            raise NotFound(f"No report for window {window} of {deployment}/{monitor}.")
        return Reply(200, await asyncio.to_thread(path.read_bytes), {"content-type": "text/html; charset=utf-8",
                                                                     "content-security-policy": REPORT_CSP, "x-content-type-options": "nosniff"})


def dashboard_routes(workspace: Any, hooks: Hooks) -> list[Route]:
    """The dashboard's routes for a server of ``workspace``."""
    return Dashboard(workspace, hooks.authenticator).routes()
