"""Requests too big, too deep, too wide or too costly are refused before they run, and say why."""

from __future__ import annotations

import contextlib
import json
import socket

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow

from server.settings import Limits
from tests.realtime.harness import ServerProcess
from tests.reliability.conftest import codes, gql, snapshot

LIMITS = Limits()
CREATE = 'mutation { createLead(input: {firstName: "Ada", lastName: "L"}) { id } }'


def read_reply(sock: socket.socket) -> str:
    """Everything the server sends until it closes the connection (it says Connection: close)."""
    parts: list[bytes] = []
    # The server closes with our unread bytes in its buffer, which resets the connection.
    with contextlib.suppress(ConnectionResetError):
        while part := sock.recv(65536):
            parts.append(part)
    return b"".join(parts).decode(errors="replace")


def assert_refused(response: httpx.Response, code: str = "BAD_USER_INPUT") -> str:
    body = response.json()
    assert body.get("data") is None, body
    assert codes(response), body
    assert set(codes(response)) == {code}, body
    message: str = body["errors"][0]["message"]
    return message


def test_the_deepest_real_query_passes_the_depth_limit(http: httpx.Client, bearer: str) -> None:
    response = gql(http, "{ getNotifications { relatedLead { id } } }", bearer=bearer)

    assert response.json() == {"data": {"getNotifications": []}}


def test_more_aliases_than_allowed_are_refused_with_no_data_change(
    http: httpx.Client, bearer: str, committed: psycopg.Connection[DictRow], database_url: str
) -> None:
    count = LIMITS.graphql_max_aliases + 1
    document = (
        "mutation { "
        + " ".join(
            f'a{i}: createLead(input: {{firstName: "A{i}", lastName: "L"}}) {{ id }}'
            for i in range(count)
        )
        + " }"
    )
    before = snapshot(database_url)

    message = assert_refused(gql(http, document, bearer=bearer))

    assert "aliases" in message
    assert snapshot(database_url) == before


def test_aliases_up_to_the_limit_are_allowed(http: httpx.Client, bearer: str) -> None:
    document = (
        "{ " + " ".join(f"c{i}: getUnreadCount" for i in range(LIMITS.graphql_max_aliases)) + " }"
    )

    data = gql(http, document, bearer=bearer).json()["data"]

    assert data == {f"c{i}": 0 for i in range(LIMITS.graphql_max_aliases)}


def test_a_query_that_would_cost_too_much_is_refused_counting_the_limit_from_variables(
    http: httpx.Client, bearer: str
) -> None:
    fields = "id type title message isRead relatedLeadId createdAt updatedAt cursor"
    lead = "relatedLead { id firstName lastName email phone company status score }"
    document = (
        "query($n: Int) { "
        + " ".join(f"p{i}: getNotifications(limit: $n) {{ {fields} {lead} }}" for i in range(4))
        + " }"
    )

    affordable = gql(http, document, {"n": 10}, bearer=bearer)
    refused = gql(http, document, {"n": 200}, bearer=bearer)

    assert "errors" not in affordable.json()
    message = assert_refused(refused)
    assert "maximum cost" in message


def test_an_omitted_limit_counts_as_the_default_page_size(http: httpx.Client, bearer: str) -> None:
    fields = "id type title message isRead relatedLeadId createdAt updatedAt cursor"
    # 16 pages of the default 50 rows, ~10 fields each: about 8,800 > ... with the lead fields
    lead = "relatedLead { id firstName lastName email phone company status score }"
    document = (
        "{ "
        + " ".join(
            f"p{i}: getNotifications {{ {fields} {lead} }}"
            for i in range(LIMITS.graphql_max_aliases)
        )
        + " }"
    )

    assert "maximum cost" in assert_refused(gql(http, document, bearer=bearer))


def test_a_document_with_too_many_tokens_is_refused_by_the_parser(
    http: httpx.Client, bearer: str
) -> None:
    document = "{ me { " + "id " * (LIMITS.graphql_max_tokens + 10) + "} }"

    message = assert_refused(gql(http, document, bearer=bearer))

    assert "token" in message.lower()


def test_a_batch_of_operations_in_a_json_array_is_refused(
    http: httpx.Client, bearer: str, committed: psycopg.Connection[DictRow], database_url: str
) -> None:
    before = snapshot(database_url)

    response = http.post(
        "/graphql",
        json=[{"query": CREATE}, {"query": CREATE}],
        headers={"Authorization": f"Bearer {bearer}"},
    )

    assert response.status_code == 400
    assert codes(response) == ["BAD_USER_INPUT"]
    assert snapshot(database_url) == before


def test_a_body_declared_larger_than_the_limit_is_refused_with_413_before_it_is_sent(
    server: ServerProcess, bearer: str
) -> None:
    # The headers announce 10 MB; only a small part follows. The answer must come anyway.
    declared = 10 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
        sock.sendall(
            (
                "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\n"
                f"Authorization: Bearer {bearer}\r\nContent-Length: {declared}\r\n\r\n"
            ).encode()
            + b'{"query": "'
            + b" " * 1000
        )
        reply = read_reply(sock)

    head, _, body = reply.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413"), head
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_is_cut_off_at_the_limit_without_reading_the_rest(
    server: ServerProcess, bearer: str
) -> None:
    limit = LIMITS.graphql_max_body_bytes
    chunk = b" " * 16384
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
        sock.sendall(
            (
                "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\n"
                f"Authorization: Bearer {bearer}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        # A little more than the limit, and never the final chunk: the server must not wait.
        for _ in range(limit // len(chunk) + 2):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        reply = read_reply(sock)

    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "PAYLOAD_TOO_LARGE" in reply


def test_a_body_just_under_the_limit_is_served(http: httpx.Client, bearer: str) -> None:
    padding = " " * (LIMITS.graphql_max_body_bytes - 200)
    response = http.post(
        "/graphql",
        content=json.dumps({"query": "{ getUnreadCount }" + padding}),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )

    assert response.json() == {"data": {"getUnreadCount": 0}}


@pytest.mark.parametrize(
    "document",
    ["{ __schema { types { name } } }", '{ __type(name: "Lead") { name } }'],
)
def test_introspection_is_refused_in_production(
    http: httpx.Client, bearer: str, document: str
) -> None:
    assert_refused(gql(http, document, bearer=bearer))


def test_typename_alone_is_still_answered_in_production(http: httpx.Client, bearer: str) -> None:
    assert gql(http, "{ __typename }", bearer=bearer).json() == {"data": {"__typename": "Query"}}
