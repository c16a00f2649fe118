"""The baseline: a bare python-socketio server, no database, no GraphQL, no authentication.

`python -m bench.bare_server --port P` serves Socket.IO on uvicorn (per-message deflate off, as
our server) and `POST /emit`, whose JSON body it broadcasts as `notification:created` to every
socket, the way the library's documentation does it: one `sio.emit` per message. The benchmark
sends it the same payloads our server would send, so the difference is our cost.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")


async def emit_endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await sio.emit("notification:created", json.loads(body))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def other(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and scope["path"] == "/emit" and scope["method"] == "POST":
        await emit_endpoint(scope, receive, send)
        return
    status = 200 if scope["type"] == "http" and scope["path"] == "/readyz" else 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


app = socketio.ASGIApp(sio, other_asgi_app=other)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
