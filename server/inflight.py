"""How many HTTP requests the app is serving now, for the fan-out's yield policy.

The fan-out (server/realtime/fanout.py) shares the event loop with the API. It yields between
slices of sockets; while a request is being served it yields after fewer sockets, so each step
of that request (its body, each database round trip, its response) waits behind a few socket
writes instead of a whole slice. Socket.IO's own requests never reach this app (python-socketio
answers them), so a held long-poll does not count as a request waiting.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class InFlightRequests:
    """Pure ASGI middleware: counts HTTP requests from their start until their app returns."""

    __slots__ = ("app", "count")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    def busy(self) -> bool:
        return self.count > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
