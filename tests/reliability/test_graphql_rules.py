"""The two validation rules written here (depth, aliases), on a schema with a cycle.

The app's own schema has no cycle (its deepest query is 3 levels), so the depth rule guards the
schema of tomorrow; a small cyclic schema shows that it works, in milliseconds.
"""

from __future__ import annotations

import time

from graphql import build_schema, parse, specified_rules, validate

from server.graphql.limits import alias_limit_rule, depth_limit_rule

SCHEMA = build_schema("type Query { node: Node } type Node { id: ID  child: Node }")


def errors(document: str, *rules: type) -> list[str]:
    return [e.message for e in validate(SCHEMA, parse(document), (*specified_rules, *rules))]


def nested(depth: int) -> str:
    inner = "id"
    for _ in range(depth - 1):
        inner = f"child {{ {inner} }}"
    return f"{{ node {{ {inner} }} }}"


def test_a_query_at_the_depth_limit_passes_and_one_level_more_is_refused() -> None:
    rule = depth_limit_rule(5)

    assert errors(nested(4), rule) == []  # node + 3 children + id = 5 levels
    assert errors(nested(5), rule) == ["the query nests 6 levels deep; the most allowed is 5"]


def test_depth_counts_through_fragments_and_inline_fragments() -> None:
    document = (
        "{ node { ...A } } fragment A on Node { child { ... on Node { child { ...B } } } } "
        "fragment B on Node { child { id } }"
    )

    assert errors(document, depth_limit_rule(5)) == []
    assert errors(document, depth_limit_rule(4)) == [
        "the query nests 5 levels deep; the most allowed is 4"
    ]


def test_a_fragment_cycle_is_reported_once_and_the_depth_rule_terminates() -> None:
    document = (
        "{ node { ...A } } fragment A on Node { child { ...B } } "
        "fragment B on Node { child { ...A } }"
    )

    found = errors(document, depth_limit_rule(50))

    assert any("Cannot spread fragment" in message for message in found)


def test_fragments_spread_twice_into_each_other_cost_linear_time() -> None:
    # F0 spreads F1 twice, F1 spreads F2 twice ...: 2**60 paths through 60 fragments.
    chain = " ".join(
        f"fragment F{i} on Node {{ id ...F{i + 1} a{i}: child {{ ...F{i + 1} }} }}"
        for i in range(60)
    )
    document = f"{{ node {{ ...F0 }} }} {chain} fragment F60 on Node {{ id }}"
    started = time.perf_counter()

    found = [e.message for e in validate(SCHEMA, parse(document), (depth_limit_rule(10),))]

    assert found == ["the query nests 62 levels deep; the most allowed is 10"]
    assert time.perf_counter() - started < 1.0


def test_aliases_are_counted_over_the_whole_document() -> None:
    document = "{ " + " ".join(f"n{i}: node {{ id }}" for i in range(5)) + " }"

    assert errors(document, alias_limit_rule(5)) == []
    assert errors(document, alias_limit_rule(4)) == ["the query has more than 4 aliases"]
