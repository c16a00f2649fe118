"""Log lines: JSON with fields in production, readable in development, request ids, no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import socketio
from psycopg.rows import DictRow
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from server.auth import hash_password
from server.logs import JsonFormatter, RequestIdFilter, TextFormatter, message_fields, redact
from server.request_context import RequestIdMiddleware, request_id_var
from tests.realtime.harness import SECRET, RecordingClient, ServerProcess, start_server, token

NewClient = Callable[[], RecordingClient]
PASSWORD = "hunter2-correct-horse-battery"
LOGIN = """mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) { token }
}"""


def record(message: str, *args: object, name: str = "server.test") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


def test_key_value_pairs_of_a_message_become_json_fields_with_the_request_id() -> None:
    token = request_id_var.set("abc123")
    try:
        entry = record(
            "action=graphql_request request_id=%s statements=%d ms=%.1f", "abc123", 2, 1.5
        )
        RequestIdFilter().filter(entry)
    finally:
        request_id_var.reset(token)

    line = json.loads(JsonFormatter().format(entry))

    assert line["requestId"] == "abc123"
    assert line["action"] == "graphql_request"
    assert (line["statements"], line["ms"]) == (2, 1.5)
    assert "request_id" not in line  # the same id, once
    assert {"time", "level", "logger", "message"} <= set(line)
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")


def test_a_message_cannot_overwrite_the_fixed_fields() -> None:
    assert message_fields("action=x level=forged time=now message=m n=7") == {"action": "x", "n": 7}


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl seen",
        "GET /socket.io/?EIO=4&token=s3cr3t-value&transport=polling",
        "{'password': 's3cr3t-value'}",
        "password=s3cr3t-value",
        "postgresql://crm:s3cr3t-value@db.internal:5432/crm",
    ],
)
def test_secrets_are_masked_in_any_line(text: str) -> None:
    masked = redact(text)

    assert "s3cr3t-value" not in masked
    assert "abc.def.ghi" not in masked
    assert "eyJzdWIiOiJ1In0" not in masked
    assert "[redacted]" in masked


def test_the_readable_format_puts_the_request_id_after_the_logger() -> None:
    entry = record("action=socket_connected sid=%s", "s1")
    entry.request_id = "r-42"

    line = TextFormatter().format(entry)

    assert " INFO    server.test [r-42] action=socket_connected sid=s1" in line
    assert not line.startswith("{")


async def echo_id(_request: Request) -> PlainTextResponse:
    return PlainTextResponse(request_id_var.get())


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("proxy-1f2e.3_A", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ("forged action=login", False),
        ("", False),
    ],
)
async def test_an_incoming_request_id_is_kept_only_when_short_and_plain(
    incoming: str, kept: bool
) -> None:
    app = RequestIdMiddleware(Starlette(routes=[Route("/", echo_id)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/", headers={"X-Request-ID": incoming})

    echoed = response.headers["X-Request-ID"]
    assert response.text == echoed  # the handler saw the id the response carries
    assert (echoed == incoming) is kept
    if not kept:
        assert len(echoed) == 16


# --- real servers ----------------------------------------------------------------------------


def lines_of(server: ServerProcess) -> list[str]:
    return [line for line in server.log().splitlines() if line.strip()]


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line the server wrote after migrating (dbmate's own output comes first)."""
    lines = lines_of(server)
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return [json.loads(line) for line in lines[first:]]


@pytest.fixture
def user(committed_db: psycopg.Connection[DictRow]) -> str:
    committed_db.execute(
        """INSERT INTO users (email, "passwordHash") VALUES (%s, %s)""",
        ("ada@example.com", hash_password(PASSWORD)),
    )
    return "ada@example.com"


@pytest.fixture
def production(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(database_url, tmp_path)
    try:
        yield server
    finally:
        server.terminate()


async def test_production_logs_are_json_lines_with_request_ids_and_never_a_secret(
    production: ServerProcess, user: str, new_client: NewClient, database_url: str
) -> None:
    url = production.url
    http = httpx.AsyncClient(base_url=url, timeout=10.0)
    login = await http.post(
        "/graphql",
        json={"query": LOGIN, "variables": {"email": user, "password": PASSWORD}},
        headers={"X-Request-ID": "client-login.1"},
        timeout=10.0,
    )
    issued = login.json()["data"]["login"]["token"]
    me = await http.post(
        "/graphql",
        json={"query": "{ me { email } }"},
        headers={"Authorization": f"Bearer {issued}"},
        timeout=10.0,
    )
    assert me.json()["data"]["me"]["email"] == user
    wrong = await http.post(
        "/graphql",
        json={"query": LOGIN, "variables": {"email": user, "password": PASSWORD + "-wrong"}},
        timeout=10.0,
    )
    assert wrong.json()["errors"]
    socket_token = token()
    by_auth = new_client()
    await by_auth.connect(url, auth={"token": socket_token})
    by_header = new_client()
    await by_header.connect(url, headers={"Authorization": f"Bearer {issued}"})
    refused = new_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(url, auth={"token": socket_token + "tampered"})
    await http.get("/healthz", params={"token": socket_token})
    # engine.io logs this one itself (an unknown session): through the same handler too.
    bogus = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": "x"})
    assert bogus.status_code == 400
    await http.aclose()
    await by_auth.close()
    await by_header.close()
    production.terminate()

    text = production.log()
    for secret in (PASSWORD, issued, socket_token, SECRET, socket_token.split(".")[2]):
        assert secret not in text
    password = psycopg.conninfo.conninfo_to_dict(database_url).get("password")
    if password:
        assert str(password) not in text

    entries = json_lines(production)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    graphql = [e for e in entries if e.get("action") == "graphql_request"]
    assert len(graphql) == 3
    assert graphql[0]["requestId"] == "client-login.1" == login.headers["X-Request-ID"]
    assert graphql[1]["requestId"] == me.headers["X-Request-ID"]
    assert graphql[1]["operation"] == "me"
    assert graphql[1]["status"] == 200
    assert isinstance(graphql[1]["statements"], int)
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    login_access = [e for e in access if e.get("requestId") == "client-login.1"]
    assert [(e["method"], e["path"], e["status"]) for e in login_access] == [
        ("POST", "/graphql", 200)
    ]
    assert any(e.get("action") == "socket_connected" for e in entries)
    assert any(e.get("action") == "socket_refused" for e in entries)
    assert any(e["logger"] == "engineio.server" and e["level"] == "ERROR" for e in entries)
    assert any(e.get("action") == "startup" and "requestId" not in e for e in entries)


def test_development_logs_are_readable_lines(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, extra_env={"APP_ENV": "development"})
    try:
        response = httpx.post(
            f"{server.url}/graphql", json={"query": "{ getUnreadCount }"}, timeout=10.0
        )
    finally:
        server.terminate()

    request_id = response.headers["X-Request-ID"]
    lines = lines_of(server)
    assert not any(line.startswith("{") for line in lines)
    (graphql,) = [line for line in lines if "action=graphql_request" in line]
    assert f"INFO    server.graphql [{request_id}] action=graphql_request" in graphql
    assert any("server.lifespan action=startup env=development" in line for line in lines)
    access = f"[{request_id}] 127.0.0.1:"
    assert any(access in line and '"POST /graphql HTTP/1.1"' in line for line in lines)
