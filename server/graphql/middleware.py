"""Authentication is the default: every root field but `login` needs a valid token.

Checking at the root, before the resolver runs, means a new operation is protected without
remembering to protect it, and a refused mutation never reaches the database.
"""

from __future__ import annotations

from typing import Any

from server.graphql.context import Info

# Introspection stays open to whoever may introspect at all (development only, see
# graphql_routes), so GraphiQL can load the schema before the user pastes a token.
PUBLIC_ROOT_FIELDS = frozenset({"login", "__schema", "__type", "__typename"})


def require_authentication(resolver: Any, obj: Any, info: Info, **arguments: Any) -> Any:
    if info.path.prev is None and info.field_name not in PUBLIC_ROOT_FIELDS:
        info.context.claims()  # raises Unauthenticated
    return resolver(obj, info, **arguments)
