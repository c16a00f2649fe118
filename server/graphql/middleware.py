"""Authentication is the default: every root field but `login` needs a valid token.

Checking at the root, before the resolver runs, means a new operation is protected without
remembering to protect it, and a refused mutation never reaches the database.

The check wraps the root fields' resolvers once, when the schema is built, rather than being
graphql-core middleware: middleware wraps every field of every object, and a page of 50
notifications resolves 450 fields, each of which paid one more Python call to learn that it is
not a root field (bench/RESULTS.md, getNotifications profile).
"""

from __future__ import annotations

import functools
from typing import Any

from graphql import GraphQLSchema, default_field_resolver

from server.graphql.context import Info

# Introspection stays open to whoever may introspect at all (development only, see
# graphql_routes), so GraphiQL can load the schema before the user pastes a token.
PUBLIC_ROOT_FIELDS = frozenset({"login", "__schema", "__type", "__typename"})


def require_authentication(resolver: Any, obj: Any, info: Info, **arguments: Any) -> Any:
    if info.path.prev is None and info.field_name not in PUBLIC_ROOT_FIELDS:
        info.context.claims()  # raises Unauthenticated
    return resolver(obj, info, **arguments)


def protect_root_fields(schema: GraphQLSchema) -> GraphQLSchema:
    """Every Query and Mutation field but the public ones runs `require_authentication` first.

    Introspection roots (`__schema`, `__type`) are not fields of the Query type, so they stay
    as they are; subscriptions do not exist here."""
    for root in (schema.query_type, schema.mutation_type):
        if root is None:
            continue
        for name, field in root.fields.items():
            if name in PUBLIC_ROOT_FIELDS:
                continue
            field.resolve = functools.partial(
                require_authentication, field.resolve or default_field_resolver
            )
    return schema
