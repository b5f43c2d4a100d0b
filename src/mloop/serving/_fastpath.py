"""An ASGI fast path for the hot endpoints: POST to invocations, infer and feedback skip the framework's
routing and go straight to ``Inference`` (about 80 µs less per request); everything else goes to FastAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mloop.serving._inference import Inference, Reply, read_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _route(path: str) -> tuple[str, str | None] | None:
    """(endpoint, deployment) for a hot path, else None."""
    if path == "/invocations":
        return "mlflow", None
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "models" and parts[3] == "invocations" and parts[2]:
        return "mlflow", parts[2]
    if len(parts) == 5 and parts[1] == "v2" and parts[2] == "models" and parts[3] and parts[4] in ("infer", "feedback"):
        return parts[4], parts[3]
    return None


class FastPath:
    """The outermost ASGI layer: hot POSTs to ``inference``, everything else (and the lifespan) to ``app``."""

    def __init__(self, app: Any, inference: Inference) -> None:
        self.app = app
        self.inference = inference

    @property
    def state(self) -> Any:
        """The wrapped app's state (hub, prediction log), as on the FastAPI app itself."""
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route = _route(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        endpoint, name = route
        try:
            body = await read_body(chunks(), headers.get("content-length"))
        except Exception as exc:  # noqa: BLE001 - a too-large body becomes a 413 reply
            reply = self.inference.failure(exc, name or "")
        else:
            if endpoint == "mlflow":
                reply = await self.inference.mlflow(name, body, headers)
            elif endpoint == "infer":
                reply = await self.inference.v2(str(name), body, headers)
            else:
                reply = await self.inference.feedback(str(name), body, headers)
        await _send(send, reply)


async def _send(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
