"""docs/GRAPHQL.md and docs/EVENTS.md against server/graphql/schema.graphql and the event JSON
Schema: the generated blocks are fresh, and the prose covers every operation, event and field."""

from __future__ import annotations

import json
import re

import pytest
from graphql import build_schema, parse

import server.throttle  # noqa: F401 - its SignInBusy is a domain error with a code
from server import docs
from server.errors import DomainError
from server.graphql.limits import PAYLOAD_TOO_LARGE
from tests.docs.markdown import cell_name, section, table_rows

GRAPHQL_PAGE = docs.GRAPHQL_PAGE.read_text()
EVENTS_PAGE = docs.EVENTS_PAGE.read_text()
EVENTS_SCHEMA = json.loads(docs.EVENTS_SCHEMA_PATH.read_text())


def test_the_generated_blocks_are_what_the_schemas_give() -> None:
    stale = [str(page) for page in docs.stale_pages()]

    assert stale == [], "run `python -m server.docs` and commit the pages"


def test_a_new_field_in_the_sdl_changes_the_generated_reference() -> None:
    sdl = docs.SDL_PATH.read_text().replace("type Query {", "type Query {\n  ping: Boolean!")
    block = next(b for b in docs.BLOCKS if b.page == docs.GRAPHQL_PAGE)

    assert "| `ping` |" in docs.render_graphql(parse(sdl))
    assert "| `ping` |" not in block.expected()


def test_every_query_and_mutation_has_a_row_in_the_operations_table() -> None:
    schema = build_schema(docs.SDL_PATH.read_text())
    operations = {
        name
        for root in (schema.query_type, schema.mutation_type)
        if root is not None
        for name in root.fields
    }
    documented = {cell_name(row[0]) for row in table_rows(section(GRAPHQL_PAGE, "## Operations"))}

    assert documented == operations


def test_every_error_code_the_server_gives_is_explained() -> None:
    # Every domain error class (server.throttle's SignInBusy included: imported above) and the
    # two codes given outside them: the body limit, and GraphQL's own errors.
    codes = {PAYLOAD_TOO_LARGE, "BAD_USER_INPUT"}
    classes: list[type[DomainError]] = [DomainError]
    while classes:
        cls = classes.pop()
        codes.add(cls.code)
        classes += cls.__subclasses__()
    documented = {cell_name(row[0]) for row in table_rows(section(GRAPHQL_PAGE, "## Errors"))}

    assert codes <= documented


def test_every_event_has_a_row_saying_when_it_is_sent() -> None:
    documented = {cell_name(row[0]) for row in table_rows(section(EVENTS_PAGE, "## Events"))}

    assert documented == set(EVENTS_SCHEMA["properties"])


@pytest.mark.parametrize("event", sorted(EVENTS_SCHEMA["properties"]))
def test_every_field_of_every_event_payload_is_in_the_payload_reference(event: str) -> None:
    reference = section(EVENTS_PAGE, "## Payload reference")
    payload = EVENTS_SCHEMA["properties"][event]["$ref"].rsplit("/", 1)[-1]
    fields = EVENTS_SCHEMA["$defs"][payload].get("properties", {})
    payload_section = section(reference, f"### {payload}")

    assert f"| `{event}` | [{payload}](#{payload.lower()}) |" in reference
    for field in fields:
        assert re.search(rf"^\| `{re.escape(field)}` \|", payload_section, re.MULTILINE), field
