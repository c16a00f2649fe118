"""Random documents, variables and bodies against the real server: every answer is a known error
code or data, no message leaks internals, and a refused request changes no row.

Documents are built from the schema's own names (so many get past the parser and some past
validation), mixed with random text, odd JSON bodies and hostile shapes. Examples are bounded
(max_examples) so the test stays a few seconds long.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import DictRow

from tests.reliability.conftest import KNOWN_CODES, LEAK_MARKERS, snapshot

ROOT_FIELDS = {
    "query": ["me", "getNotifications", "getUnreadCount", "leads", "lead"],
    "mutation": [
        "login",
        "createLead",
        "updateLead",
        "deleteLead",
        "createTask",
        "completeTask",
        "addComment",
        "markAsRead",
        "markAllAsRead",
        "deleteNotification",
    ],
}
ARGUMENTS = ["id", "limit", "before", "after", "unreadOnly", "input", "leadId", "title", "body"]
SUBFIELDS = [
    "id",
    "type",
    "title",
    "message",
    "isRead",
    "relatedLeadId",
    "relatedLead",
    "createdAt",
    "cursor",
    "firstName",
    "score",
    "token",
    "user",
    "email",
    "__typename",
    "nope",
]
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "'; DROP TABLE leads; --", "\x00"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAME, inner, max_size=4),
    max_leaves=12,
)


def literal(value: Any) -> str:
    """A GraphQL literal for a JSON value (objects keep unquoted keys)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return "{" + ", ".join(f"{key}: {literal(item)}" for key, item in value.items()) + "}"


@st.composite
def selections(draw: st.DrawFn, depth: int = 0) -> str:
    fields = draw(st.lists(st.sampled_from(SUBFIELDS), min_size=1, max_size=4))
    parts = []
    for field in fields:
        alias = draw(st.one_of(st.just(""), NAME.map(lambda name: name + ": ")))
        nested = ""
        if depth < 3 and draw(st.booleans()):
            nested = " { " + draw(selections(depth + 1)) + " }"
        parts.append(alias + field + nested)
    return " ".join(parts)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, Any]:
    operation = draw(st.sampled_from(["query", "mutation"]))
    roots = []
    variables: dict[str, Any] = {}
    definitions = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        field = draw(st.sampled_from(ROOT_FIELDS[operation]))
        arguments = []
        for name in draw(st.lists(st.sampled_from(ARGUMENTS), max_size=3, unique=True)):
            if draw(st.booleans()):
                variable = f"v{index}{name}"
                kind = draw(st.sampled_from(["Int", "String", "Boolean", "ID", "String!", "Int!"]))
                definitions.append(f"${variable}: {kind}")
                variables[variable] = draw(json_values)
                arguments.append(f"{name}: ${variable}")
            else:
                arguments.append(f"{name}: {literal(draw(json_values))}")
        args = f"({', '.join(arguments)})" if arguments else ""
        body = " { " + draw(selections()) + " }" if draw(st.booleans()) else ""
        roots.append(f"r{index}: {field}{args}{body}")
    header = f"{operation}({', '.join(definitions)})" if definitions else operation
    document = f"{header} {{ {' '.join(roots)} }}"
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        # Damage it: the parser's errors must be clean too.
        cut = draw(st.integers(min_value=0, max_value=len(document)))
        document = document[:cut] + draw(st.text(max_size=5)) + document[cut:]
    return document, variables


bodies = st.one_of(
    documents().map(lambda doc: json.dumps({"query": doc[0], "variables": doc[1]})),
    st.tuples(st.text(max_size=200), json_values).map(
        lambda pair: json.dumps({"query": pair[0], "variables": pair[1]})
    ),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=300).map(
        lambda n: json.dumps({"query": "{ me " + "{ id " * n + "}" * (n + 1)})
    ),
)


def check_answer(response: httpx.Response, sent: str) -> dict[str, Any] | None:
    """The body of a well-formed answer, with every error code known and no leak."""
    assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, dict), body
    for error in body.get("errors", []):
        code = error.get("extensions", {}).get("code")
        assert code in KNOWN_CODES, (code, error, sent[:300])
        message = error["message"]
        for marker in LEAK_MARKERS:
            assert marker not in message or marker in sent, (marker, message)
    result: dict[str, Any] = body
    return result


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(body=bodies)
def test_random_requests_get_known_errors_no_leaks_and_refusals_change_nothing(
    http: httpx.Client,
    bearer: str,
    committed: psycopg.Connection[DictRow],
    body: str,
) -> None:
    before = snapshot(committed)

    response = http.post(
        "/graphql",
        content=body.encode("utf-8", errors="surrogatepass"),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )

    answer = check_answer(response, body)
    assert answer is not None
    if answer.get("data") is None:
        assert snapshot(committed) == before, body[:300]
