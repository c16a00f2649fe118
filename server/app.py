"""The ASGI application: Starlette (HTTP) wrapped by python-socketio on the same port."""

from __future__ import annotations

import gc

import socketio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from server.graphql import graphql_routes
from server.inflight import InFlightRequests
from server.lifespan import AppState, lifespan_for
from server.metrics import metrics_endpoint
from server.realtime.admission import refusal_status
from server.realtime.listener import ListenerOptions
from server.realtime.sio import SocketGateway
from server.request_context import RequestIdMiddleware, check_one_write
from server.settings import Settings, load_settings
from server.ui import ui_routes


async def healthz(_request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers and the LISTEN connection is up (events would be lost otherwise)."""
    state: AppState = request.app.state.crm
    if state.realtime is not None and not state.realtime.listening:
        return JSONResponse({"status": "unavailable", "listener": "down"}, status_code=503)
    try:
        async with state.pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings, database_url: str, *, listener_options: ListenerOptions | None = None
) -> ASGIApp:
    """Starlette (HTTP) inside python-socketio's ASGIApp, which serves /socket.io/ and passes
    everything else, lifespan included, to Starlette (it has no startup hooks of its own).
    Outermost, the request id: every HTTP request and handshake, Socket.IO's included."""
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        *graphql_routes(settings),
        *ui_routes(settings),
    ]
    if settings.metrics_served:
        routes.append(Route("/metrics", metrics_endpoint))
    gateway = SocketGateway(settings)
    http = Starlette(
        routes=routes,
        middleware=[
            # The same origins as Socket.IO's cors_allowed_origins (see SocketGateway).
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                # Browsers may read the request id, to quote it in a bug report.
                expose_headers=["X-Request-ID"],
            )
        ],
        lifespan=lifespan_for(
            settings, database_url, gateway=gateway, listener_options=listener_options
        ),
    )
    check_one_write()  # responses in one write: logged and exported when uvicorn changed
    served = InFlightRequests(http)
    gateway.fanout.requests_waiting = served.busy
    # refusal_status: a handshake over the connection caps gets 429/503, not engine.io's 401.
    return RequestIdMiddleware(refusal_status(socketio.ASGIApp(gateway.sio, other_asgi_app=served)))


def create_app_from_environment() -> ASGIApp:
    """uvicorn's factory: `python -m server serve` has put the resolved settings in the env."""
    settings = load_settings()
    if settings.database_url is None:
        raise RuntimeError(
            "DATABASE_URL must be set for the app factory; use `python -m server serve`"
        )
    app = create_app(settings, settings.database_url)
    # What is built by now (modules, the schema, the app) lives as long as the worker: out of
    # the collector's reach, a full collection no longer walks it and stalls every request in
    # flight for tens of milliseconds (bench/RESULTS.md section 10: the API's p99 halved).
    gc.collect()
    gc.freeze()
    return app
