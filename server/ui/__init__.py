"""What a person opens in a browser: the live notification page and the published SDL.

`ui_routes(settings)` is all the app needs. The page (/, /ui/app.js, /ui/app.css) is plain HTML
and an ES module with no build step of its own: it loads the feed client package as built into
client/dist (at /ui/client/…, built by `make install`) and the official Socket.IO client's ESM
build from node_modules (/ui/socket.io.esm.min.js). It is served in development, and elsewhere
only with SERVE_UI=true. The GraphQL SDL at /graphql/schema.graphql follows introspection:
development, or SERVE_SCHEMA=true.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from server.graphql import SCHEMA_PATH
from server.settings import PROJECT_ROOT, Settings

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
SOCKET_IO_CLIENT: Final = PROJECT_ROOT / "node_modules/socket.io-client/dist/socket.io.esm.min.js"
CLIENT_DIST: Final = PROJECT_ROOT / "client/dist"
# The built package's modules: plain names, one level of folder at most, never "..".
CLIENT_MODULE: Final = re.compile(r"(?:[a-z][a-z-]*/)?[a-z][a-z-]*\.js")

# Everything the page loads comes from this server; no inline script or style is needed, so none
# is allowed. connect-src 'self' covers fetch('/graphql') and the same-origin WebSocket; data:
# images are the empty favicon (no request for /favicon.ico).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Always revalidate (the ETag makes that cheap): a page that changed is never stale.
    "Cache-Control": "no-cache",
}


def _static(name: str, media_type: str) -> Route:
    path = STATIC_DIR / name

    async def endpoint(_request: Request) -> Response:
        return FileResponse(path, media_type=media_type, headers=PAGE_HEADERS)

    return Route("/" if name == "index.html" else f"/ui/{name}", endpoint, methods=["GET"])


async def socket_io_client(_request: Request) -> Response:
    """The client socket.io-client ships, at the version package.json pins."""
    if not SOCKET_IO_CLIENT.is_file():
        return PlainTextResponse(
            "socket.io-client is not installed: run `make install`", status_code=503
        )
    return FileResponse(SOCKET_IO_CLIENT, media_type="text/javascript", headers=PAGE_HEADERS)


async def client_module(request: Request) -> Response:
    """A module of the feed client package (client/), as `make install` built it."""
    name = request.path_params["name"]
    if not CLIENT_DIST.is_dir():
        return PlainTextResponse(
            "the feed client is not built: run `make install`", status_code=503
        )
    path = CLIENT_DIST / name
    if CLIENT_MODULE.fullmatch(name) is None or not path.is_file():
        return PlainTextResponse("Not Found", status_code=404)
    return FileResponse(path, media_type="text/javascript; charset=utf-8", headers=PAGE_HEADERS)


async def graphql_schema(_request: Request) -> Response:
    """The SDL the server runs, as it is: the source for typed clients (contract/, make types)."""
    return FileResponse(
        SCHEMA_PATH,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def ui_routes(settings: Settings) -> list[Route]:
    """Exact routes (no Mount, so no redirects and nothing else under /ui/ is reachable; under
    /ui/client/ only the built package's .js modules)."""
    routes: list[Route] = []
    if settings.schema_published:
        routes.append(Route("/graphql/schema.graphql", graphql_schema, methods=["GET"]))
    if settings.ui_enabled:
        routes += [
            _static("index.html", "text/html; charset=utf-8"),
            _static("app.js", "text/javascript; charset=utf-8"),
            _static("app.css", "text/css; charset=utf-8"),
            Route("/ui/socket.io.esm.min.js", socket_io_client, methods=["GET"]),
            Route("/ui/client/{name:path}", client_module, methods=["GET"]),
        ]
    return routes
