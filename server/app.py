"""The ASGI application: Starlette (HTTP) wrapped by python-socketio on the same port."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.lifespan import AppState, lifespan_for
from server.settings import Settings, load_settings


async def healthz(_request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers."""
    state: AppState = request.app.state.crm
    try:
        async with state.pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings, database_url: str) -> Starlette:
    routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
    return Starlette(routes=routes, lifespan=lifespan_for(settings, database_url))


def create_app_from_environment() -> Starlette:
    """uvicorn's factory: `python -m server serve` has put the resolved settings in the env."""
    settings = load_settings()
    if settings.database_url is None:
        raise RuntimeError(
            "DATABASE_URL must be set for the app factory; use `python -m server serve`"
        )
    return create_app(settings, settings.database_url)
