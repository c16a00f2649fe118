"""The validation cache answers what validation would: keyed by query text and variables."""

from __future__ import annotations

from graphql import parse, specified_rules

from server.graphql import executable_schema
from server.graphql.limits import caching_validator, validation_rules
from server.settings import Limits

QUERY = "query ($n: Int) { getNotifications(limit: $n) { id title message cursor } }"


def validate(validator: object, query: str, variables: dict[str, object] | None) -> list[str]:
    schema = executable_schema()
    data = {"query": query, "variables": variables}
    document = parse(query)
    custom = validation_rules(schema, Limits(graphql_max_cost=500))(None, document, data)
    rules = (*specified_rules, *custom)  # as ariadne's validate_query passes them
    errors = validator(schema, document, rules)  # type: ignore[operator]
    return [error.message for error in errors]


def test_a_cached_answer_depends_on_the_variables_the_cost_rule_reads() -> None:
    validator = caching_validator()
    for _ in range(2):  # the second pass answers from the cache
        assert validate(validator, QUERY, {"n": 10}) == []
        [too_costly] = validate(validator, QUERY, {"n": 200})
        assert "cost" in too_costly.lower() or "complexity" in too_costly.lower()


def test_an_invalid_document_stays_invalid_when_asked_again() -> None:
    validator = caching_validator()
    query = "{ getNotifications { nope } }"
    first = validate(validator, query, None)
    assert first
    assert validate(validator, query, None) == first
