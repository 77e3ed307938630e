"""Request body size limit: bodies over `max_body_bytes` are refused with 413 before they are parsed."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_info, error_response


class BodySizeLimit:
    """ASGI middleware. A declared Content-Length over the limit is refused without reading the body;
    a body without one (chunked) is counted as it arrives and refused once it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request body is larger than the limit of {self.max_bytes} bytes"
        for name, value in scope["headers"]:
            # A malformed Content-Length is the HTTP server's to reject; counting below still applies.
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = error_response(413, "RESOURCE_EXHAUSTED", message, [error_info("BODY_TOO_LARGE")])
                await response(scope, receive, send)
                return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing to the error handlers.
                    raise HTTPException(413, message)
            return incoming

        await self.app(scope, counted_receive, send)
