"""A bounded name for a GraphQL request, for metrics: its root fields, never the client's text.

Operation names are whatever a client chose to write, so they would make one time series per
client whim. The root fields of the executed operation, checked against the schema, are a small
known set: `getNotifications`, `createLead,getUnreadCount`. Anything else is "invalid" (it did
not parse, names an unknown field or operation) or, when the request never got as far as a
query, "unknown". More than MAX_FIELDS distinct root fields count as "multiple", which bounds
the number of labels by the schema whatever clients send.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from ariadne.types import QueryParser
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
)

from server.bounded_cache import BoundedCache

UNKNOWN: Final = "unknown"
INVALID: Final = "invalid"
MULTIPLE: Final = "multiple"
MAX_FIELDS: Final = 3
_INTROSPECTION = frozenset({"__schema", "__type", "__typename"})


@dataclass
class OperationLabel:
    value: str = UNKNOWN


# Set per request by the /graphql endpoint; the query parser below fills it in.
operation_label_var: ContextVar[OperationLabel | None] = ContextVar(
    "crm_graphql_operation", default=None
)


def _root_type(schema: GraphQLSchema, operation: OperationType) -> GraphQLObjectType | None:
    if operation is OperationType.QUERY:
        return schema.query_type
    if operation is OperationType.MUTATION:
        return schema.mutation_type
    return schema.subscription_type


def operation_label(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> str:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [
            o for o in operations if o.name is not None and o.name.value == operation_name
        ]
    if len(operations) != 1:
        return INVALID
    operation = operations[0]
    root = _root_type(schema, operation.operation)
    if root is None:
        return INVALID
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    seen_fragments: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is None:
                    return INVALID
                if fragment.name.value not in seen_fragments:
                    seen_fragments.add(fragment.name.value)
                    pending.append(fragment.selection_set)
    if not names or any(n not in root.fields and n not in _INTROSPECTION for n in names):
        return INVALID
    if len(names) > MAX_FIELDS:
        return MULTIPLE
    return ",".join(sorted(names))


def default_parser(_context: Any, data: dict[str, Any]) -> DocumentNode:
    """What ariadne does without a `query_parser`."""
    return parse(data["query"])


# Labels remembered per (query text, operation name), as documents are (server/graphql/limits.py).
CACHED_LABELS = 512
CACHED_LABEL_MAX_CHARS = 8 * 1024


def labelling_parser(schema: GraphQLSchema, parse_query: QueryParser) -> QueryParser:
    """An ariadne `query_parser`: `parse_query`, then the request's label is recorded."""
    labels: BoundedCache[tuple[str, str | None], str] = BoundedCache(CACHED_LABELS)

    def parse_and_label(context: Any, data: dict[str, Any]) -> DocumentNode:
        holder = operation_label_var.get()
        if holder is not None:
            holder.value = INVALID  # until the document parses
        document = parse_query(context, data)
        if holder is not None:
            raw_name = data.get("operationName")
            name = raw_name if isinstance(raw_name, str) else None
            query = data["query"]
            key = (query, name) if len(query) <= CACHED_LABEL_MAX_CHARS else None
            label = labels.get(key) if key is not None else None
            if label is None:
                label = operation_label(schema, document, name)
                if key is not None:
                    labels.put(key, label)
            holder.value = label
        return document

    return parse_and_label
