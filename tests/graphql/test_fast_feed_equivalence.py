"""FastExecutor answers byte for byte what graphql-core's own executor answers.

Generated queries over the real schema and a real database (notifications and leads with nulls,
read and unread rows, non-ASCII text) run through both executors; the JSON a client would get
(as Starlette renders it) must be identical, data and errors alike. Selections the fast path
takes (flat leaves, aliases, fragments, directives) and ones it must leave to the general path
(relatedLead, errors) are both generated. A second set of cases forces the refusals the real
data never shows: nulls in non-null fields, values that do not coerce, rows that are not dicts,
a row resolver that raises. And the DateTime text, 100 of which a page writes, is what it was.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from ariadne import QueryType, graphql, make_executable_schema
from graphql import GraphQLSchema
from graphql.execution.executor import Executor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from server.auth import issue_token
from server.db import Pool, create_pool
from server.graphql import executable_schema
from server.graphql.context import RequestContext
from server.graphql.errors import SilentLogger, format_error
from server.graphql.execution import FastExecutor, row_resolver
from server.graphql.limits import query_parser, validation_rules
from server.serialization import iso8601
from server.settings import Settings
from server.throttle import LoginThrottle
from tests.graphql.conftest import SECRET, settings_for

NOTIFICATION_LEAVES = (
    "id",
    "type",
    "title",
    "message",
    "isRead",
    "relatedLeadId",
    "createdAt",
    "updatedAt",
    "cursor",
    "__typename",
)
LEAD_LEAVES = (
    "id",
    "firstName",
    "lastName",
    "email",
    "phone",
    "company",
    "status",
    "score",
    "createdAt",
    "updatedAt",
    "__typename",
)
ALIASES = ("a", "b", "id", "title", "x1")
DIRECTIVES = ("", "", "", " @include(if: true)", " @include(if: false)", " @skip(if: true)",
              " @skip(if: false)", " @include(if: $flag)")  # fmt: skip


def render(result: Any) -> bytes:
    """What starlette.responses.JSONResponse sends."""
    return json.dumps(
        result, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


@dataclass
class Runner:
    loop: asyncio.AbstractEventLoop
    pool: Pool
    settings: Settings
    token: str

    def context(self) -> RequestContext:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/graphql",
            "headers": [(b"authorization", f"Bearer {self.token}".encode())],
        }
        context = RequestContext(
            request=Request(scope),
            settings=self.settings,
            pool=self.pool,
            request_id="equivalence",
            login_throttle=LoginThrottle.from_limits(self.settings.limits),
        )
        self.loop.run_until_complete(context.authenticate())
        return context

    def answer(
        self, executor: type[Executor[Any]], data: dict[str, Any], schema: GraphQLSchema
    ) -> tuple[bool, bytes]:
        limits = self.settings.limits
        running = asyncio.all_tasks(self.loop)  # the pool's own workers, which never end
        success, result = self.loop.run_until_complete(
            graphql(
                schema,
                data,
                context_value=self.context(),
                query_parser=query_parser(limits),
                validation_rules=validation_rules(schema, limits),
                introspection=False,
                logger=SilentLogger(),
                error_formatter=format_error,
                execution_context_class=executor,  # type: ignore[arg-type]
            )
        )
        # graphql-core leaves the siblings of a failed field to settle in the background.
        pending = asyncio.all_tasks(self.loop) - running
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        return success, render(result)


def seed(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n in range(14):
            conn.execute(
                """INSERT INTO leads ("firstName", "lastName", email, company, score)
                   VALUES (%s, %s, %s, %s, %s)""",
                (f"Zoë {n}", f"Ürban-{n} 🚀", None if n % 3 else f"z{n}@example.com",
                 None if n % 2 else "Ac\"me\\ \u2028", n * 7),
            )  # fmt: skip
        conn.execute(
            """INSERT INTO notifications (type, title, message, "isRead", "createdAt",
                                          "updatedAt")
               SELECT (ARRAY['task_completed', 'comment_added', 'score_updated'])[g % 3 + 1]
                          ::notification_type,
                      format('Title %s', g), format('Message «%s»', g), g % 2 = 0,
                      now() - g * interval '1 minute', now() - g * interval '1 minute'
               FROM generate_series(1, 12) AS g"""
        )
        conn.execute("""UPDATE notifications SET "isRead" = true WHERE title LIKE '%%3'""")


@pytest.fixture(scope="module")
def runner(database_url: str) -> Iterator[Runner]:
    seed(database_url)
    loop = asyncio.new_event_loop()
    pool = create_pool(database_url, min_size=1, max_size=2)
    loop.run_until_complete(pool.open(wait=True, timeout=30))
    token = issue_token(
        user_id="00000000-0000-4000-8000-0000000000e1",
        email="equivalence@example.com",
        secret=SECRET,
        expires_in_seconds=3600,
    )
    try:
        yield Runner(loop, pool, settings_for(database_url, app_env="production"), token)
    finally:
        loop.run_until_complete(pool.close())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# --- generated queries over the real schema ---------------------------------------------------


@st.composite
def leaf(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    name = draw(st.sampled_from(names))
    alias = draw(st.one_of(st.just(""), st.sampled_from(ALIASES).map(lambda a: f"{a}: ")))
    return f"{alias}{name}{draw(st.sampled_from(DIRECTIVES))}"


@st.composite
def selection(draw: st.DrawFn, names: tuple[str, ...], type_name: str, nested: bool) -> str:
    kinds = ["leaf", "leaf", "leaf", "inline", "spread"] + (["nested"] if nested else [])
    items = []
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=9)):
        if kind == "leaf":
            items.append(draw(leaf(names)))
        elif kind == "inline":
            inner = " ".join(draw(st.lists(leaf(names), min_size=1, max_size=3)))
            on = draw(st.sampled_from(("", f" on {type_name}")))
            items.append(f"...{on}{draw(st.sampled_from(DIRECTIVES))} {{ {inner} }}")
        elif kind == "spread":
            items.append(f"...{type_name}Part{draw(st.sampled_from(DIRECTIVES))}")
        else:
            lead = " ".join(draw(st.lists(leaf(LEAD_LEAVES), min_size=1, max_size=4)))
            items.append(f"relatedLead{draw(st.sampled_from(DIRECTIVES))} {{ {lead} }}")
    return " ".join(items)


@st.composite
def operation(draw: st.DrawFn) -> dict[str, Any]:
    roots = []
    fragments = {}
    for root in draw(st.lists(st.sampled_from(("feed", "leads", "lead", "count")), min_size=1,
                              max_size=3, unique=True)):  # fmt: skip
        if root == "feed":
            limit = draw(st.integers(1, 40))
            unread = draw(st.sampled_from(("", ", unreadOnly: true", ", unreadOnly: false")))
            body = draw(selection(NOTIFICATION_LEAVES, "Notification", nested=True))
            roots.append(f"getNotifications(limit: {limit}{unread}) {{ {body} }}")
            fragments["Notification"] = draw(selection(NOTIFICATION_LEAVES, "Notification", False))
        elif root == "leads":
            body = draw(selection(LEAD_LEAVES, "Lead", nested=False))
            roots.append(f"leads(limit: {draw(st.integers(1, 20))}) {{ {body} }}")
            fragments["Lead"] = draw(selection(LEAD_LEAVES, "Lead", nested=False))
        elif root == "lead":
            body = draw(selection(LEAD_LEAVES, "Lead", nested=False))
            roots.append(f"lead(id: {draw(st.integers(0, 20))}) {{ {body} }}")
            fragments["Lead"] = draw(selection(LEAD_LEAVES, "Lead", nested=False))
        else:
            roots.append("getUnreadCount")
    used = " ".join(roots)
    text = "query ($flag: Boolean = true) { " + used + " }"
    for type_name, body in fragments.items():
        if f"...{type_name}Part" in used:
            # A fragment's own spreads of itself would be a cycle: drop them from its body.
            body = body.replace(f"...{type_name}Part", f"...on {type_name}")
            text += f" fragment {type_name}Part on {type_name} {{ {body} }}"
    flag = draw(st.sampled_from((None, True, False)))
    return {"query": text, "variables": None if flag is None else {"flag": flag}}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=operation())
def test_generated_queries_answer_the_same_bytes(runner: Runner, data: dict[str, Any]) -> None:
    schema = executable_schema()
    assert runner.answer(FastExecutor, data, schema) == runner.answer(Executor, data, schema)


class CountingExecutor(FastExecutor):
    """Counts the fields graphql-core executes one by one."""

    fields = 0

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        CountingExecutor.fields += 1
        return super().execute_field(*args, **kwargs)


@pytest.mark.parametrize(
    ("query", "fields_executed"),
    [
        # The bench's feed query: one root field, the 20 x 9 leaves built in one pass.
        (
            "{ getNotifications(limit: 20) { id type title message isRead relatedLeadId "
            "createdAt updatedAt cursor } }",
            1,
        ),
        ("{ getNotifications(limit: 20) { __typename a: id ...on Notification { cursor } } }", 1),
        # relatedLead is an object: both fields of every row go the general way (the leads
        # themselves are flat again).
        ("{ getNotifications(limit: 20) { id relatedLead { id } } }", 1 + 20 * 2),
    ],
)
def test_flat_selections_take_the_fast_path(
    runner: Runner, query: str, fields_executed: int
) -> None:
    schema = executable_schema()
    CountingExecutor.fields = 0
    fast = runner.answer(CountingExecutor, {"query": query}, schema)
    assert CountingExecutor.fields == fields_executed
    assert fast == runner.answer(Executor, {"query": query}, schema)
    assert fast[0] is True


# --- refusals the real data never shows -------------------------------------------------------

TOY_SDL = """
scalar DateTime
type Query { rows: [Row!]!  maybe: [Row]  one: Row }
type Row { id: ID!  name: String!  n: Int  flag: Boolean  tag: String  label: String! }
"""


class NotADict:
    id = "7"
    name = "attribute row"
    n = 1
    flag = True
    tag = None
    label = "x"


def _row(**changes: Any) -> dict[str, Any]:
    return {"id": "1", "name": "ok", "n": 3, "flag": False, "tag": None, "label": "l", **changes}


TOY_ROWS: list[list[Any]] = [
    [_row(), _row(id=2)],  # fast
    [_row(name=None)],  # null in a non-null field
    [_row(n=2**40)],  # Int out of range
    [_row(n="12")],  # coerces: "12" -> 12
    [_row(name=5, flag=0)],  # coerces: "5", false
    [_row(flag="yes")],  # Boolean cannot represent "yes"
    [_row(id=True)],  # ID cannot represent a bool
    [NotADict()],  # attributes, not keys
    [None],  # null item in a non-null list
    [_row(n=lambda _info: 4)],  # the default resolver calls a callable
    [_row(label="boom")],  # the row resolver raises
]


@pytest.mark.parametrize("rows", TOY_ROWS)
@pytest.mark.parametrize(
    "query",
    [
        "{ rows { id name n flag tag label __typename } }",
        "{ maybe { id n x: name label } }",
        "{ one { id name n label } }",
    ],
)
def test_refusals_answer_what_graphql_core_answers(
    runner: Runner, rows: list[Any], query: str
) -> None:
    toy = QueryType()
    toy.set_field("rows", lambda *_: rows)
    toy.set_field("maybe", lambda *_: rows)
    toy.set_field("one", lambda *_: rows[0])
    schema = make_executable_schema(TOY_SDL, toy)

    @row_resolver
    def label(row: Any, _info: Any) -> str:
        value = row["label"] if isinstance(row, dict) else row.label
        if value == "boom":
            raise ValueError("boom")
        return str(value)

    row_type = schema.get_type("Row")
    row_type.fields["label"].resolve = label  # type: ignore[union-attr]
    fast = runner.answer(FastExecutor, {"query": query}, schema)
    assert fast == runner.answer(Executor, {"query": query}, schema)


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1),  # naive bounds; the values get a zone
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from((UTC, timezone(timedelta(hours=5, minutes=30)))),
    )
)
def test_iso8601_writes_what_isoformat_with_microseconds_writes(moment: datetime) -> None:
    expected = moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    assert iso8601(moment) == expected
