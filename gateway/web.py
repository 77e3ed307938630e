"""The browser client (web/ at the repository root), served at `/` after every API route.

Only GET and HEAD of a file in web/ are answered by it; anything else is the gateway's usual JSON 404
(ROUTE_NOT_FOUND), so mounting the client at `/` changes no answer of the API (an unknown `/v1/...`
path, a POST to a path no route has).
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIRECTORY = Path(__file__).resolve().parents[1] / "web"


class WebClient(StaticFiles):
    """web/'s files, `index.html` for `/`. Raises HTTPException 404 for another method, for a path
    under /v1/ and for a file that does not exist."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD") or path == "v1" or path.startswith("v1/"):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def web_client() -> WebClient:
    """The app to mount at `/`. Raises RuntimeError if web/ is missing (a broken checkout or image)."""
    return WebClient(directory=WEB_DIRECTORY, html=True)
