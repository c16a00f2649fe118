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


CREATE = "mutation ($input: CreateLeadInput!) { createLead(input: $input) { id } }"
MIXED = (
    "query ($n: Int, $a: String, $u: Boolean, $l: Int, $o: Int) {"
    " getNotifications(limit: $n, after: $a, unreadOnly: $u) { id ...More }"
    " leads(limit: $l, offset: $o) { id } }"
    " fragment More on Notification { title cursor }"
)


def test_variables_the_cost_rule_cannot_read_share_one_rule_and_one_answer() -> None:
    schema = executable_schema()
    rules = validation_rules(schema, Limits(graphql_max_cost=500))
    document = parse(CREATE)
    made = {
        rules(None, document, {"query": CREATE, "variables": {"input": {"firstName": f"n{i}"}}})[-1]
        for i in range(50)
    }
    assert len(made) == 1  # one cost rule class for every createLead, not one per request
    paged = parse(QUERY)
    by_limit = {
        rules(None, paged, {"query": QUERY, "variables": {"n": n}})[-1] for n in (10, 20, 10)
    }
    assert len(by_limit) == 2


def test_cached_answers_equal_fresh_validation_over_generated_variables() -> None:
    import random

    rng = random.Random(1207)
    choices: dict[str, list[object]] = {
        "n": [None, 0, 1, 50, 100, 499, 500, 501, 10**6, "7", "x", 2.5, [3]],
        "a": [None, "cursor", 12, ""],
        "u": [None, True, False, "yes"],
        "l": [None, 1, 5, 600, "9"],
        "o": [None, 0, 3, -1],
    }
    cached = caching_validator()
    for _ in range(400):
        variables = {
            name: rng.choice(values) for name, values in choices.items() if rng.random() < 0.8
        }
        fresh = validate(caching_validator(), MIXED, variables)
        assert validate(cached, MIXED, variables) == fresh, variables
