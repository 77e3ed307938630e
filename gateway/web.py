"""The browser client (web/ at the repository root), served by the gateway at `/`.

The mount matches only GET and HEAD of `/` and of the files web/ held when the app was made, so every
other request reaches the router's usual answers (an API route, the JSON 405 with Allow for a route's
wrong method, the JSON 404 ROUTE_NOT_FOUND for an unknown path): serving the client changes no answer
of the API, whatever is routed after it. A file added to web/ is served after a restart.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIRECTORY = Path(__file__).resolve().parents[1] / "web"


class WebClientMount(Mount):
    """web/'s files at `/`, `index.html` for `/` itself."""

    def __init__(self, directory: Path) -> None:
        super().__init__("/", app=StaticFiles(directory=directory, html=True), name="web")
        self._paths = {"/"} | {"/" + p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] not in self._paths:
            return Match.NONE, {}
        return super().matches(scope)


def web_client() -> WebClientMount:
    """The route to add to the app's routes. Raises RuntimeError if web/ is missing (a broken checkout
    or image)."""
    if not WEB_DIRECTORY.is_dir():
        raise RuntimeError(f"the web client's folder {WEB_DIRECTORY} is missing")
    return WebClientMount(WEB_DIRECTORY)
