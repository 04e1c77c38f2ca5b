"""The dashboard's web app (Starlette): one page, its script and style, Plotly, and the state as JSON.

Everything the page loads comes from this server: Plotly's bundle ships inside the `plotly`
Python package and is served from there, so the page works with no internet at all. Only
requests naming a loopback host are answered (a page on another site cannot reach the
dashboard through DNS rebinding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIRECTORY = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]
NO_STORE = {"Cache-Control": "no-store"}


class StateSource(Protocol):
    """Where `/api/state` comes from (`Refresher`)."""

    def payload(self) -> bytes: ...

    @property
    def healthy(self) -> bool: ...


def plotly_bundle() -> Path:
    """plotly.js as shipped in the `plotly` package (`include_plotlyjs=True` writes the same file)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js is missing from the plotly package ({path})")
    return path


def create_app(source: StateSource) -> Starlette:
    bundle = plotly_bundle()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIRECTORY / "index.html", headers=NO_STORE)

    async def state(request: Request) -> Response:
        return Response(source.payload(), media_type="application/json", headers=NO_STORE)

    async def health(request: Request) -> Response:
        healthy = source.healthy
        return JSONResponse({"ok": healthy}, status_code=200 if healthy else 503, headers=NO_STORE)

    async def plotly_js(request: Request) -> Response:
        return FileResponse(bundle, media_type="text/javascript")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/healthz", health),
            Route("/vendor/plotly.min.js", plotly_js),
            Mount("/static", StaticFiles(directory=STATIC_DIRECTORY), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)],
    )
