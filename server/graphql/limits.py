"""What one GraphQL request may cost, checked before anything runs.

In order of when they act:

1. the body (LimitedHTTPHandler): only JSON, and above `graphql_max_body_bytes` the request is
   refused with 413 before the rest is read (a declared Content-Length is believed at once; a
   chunked body is counted as it arrives); a body that is not JSON, or JSON nested too deeply to
   decode, is a 400 with a GraphQL error, not ariadne's plain text;
2. the parser: graphql-core stops after `graphql_max_tokens` lexical tokens, so a huge document
   costs no more than that to refuse;
3. validation, beside the specification's rules: graphql-core's MaxIntrospectionDepthRule,
   ariadne's cost validator (every field costs 1, times the `limit` of the lists around it), and
   two small rules that neither library has: selection depth and the number of aliases.

A JSON array of operations (batching) is refused by ariadne itself ("Operation data should be a
JSON object"). Every refusal is a GraphQL error coded BAD_USER_INPUT: nothing has run, and the
caller can fix the request.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection
from functools import cache
from typing import Any

from ariadne.asgi.handlers import GraphQLHTTPHandler
from ariadne.validation.query_cost import CostValidator
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    Visitor,
    parse,
    validate,
    visit,
)
from graphql.validation.rules.max_introspection_depth_rule import MaxIntrospectionDepthRule
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive

from server.bounded_cache import BoundedCache
from server.graphql.inputs import DEFAULT_PAGE_SIZE
from server.settings import Limits

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
BAD_USER_INPUT = "BAD_USER_INPUT"
JSON_CONTENT_TYPE = "application/json"


class _Refused(Exception):
    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.response = JSONResponse(
            {"errors": [{"message": message, "extensions": {"code": code}}]},
            status_code=status,
            # A body refused half-read leaves the connection unusable for another request.
            headers={"Connection": "close"} if status == 413 else None,
        )


def _body_too_large(limit: int) -> _Refused:
    return _Refused(
        f"the request body is larger than {limit} bytes", status=413, code=PAYLOAD_TOO_LARGE
    )


def limited_receive(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing as soon as the body read so far passes `limit` bytes."""
    seen = 0

    async def receive_within_limit() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _body_too_large(limit)
        return message

    return receive_within_limit


class LimitedHTTPHandler(GraphQLHTTPHandler):
    """ariadne's HTTP handler with a body limit, JSON only (no schema field takes an upload),
    and refusals shaped as GraphQL errors."""

    def __init__(self, limits: Limits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._body_limit = limits.graphql_max_body_bytes

    async def handle_request(self, request: Request) -> Response:
        if request.method == "POST":
            declared = request.headers.get("content-length")
            if declared is not None and (
                not declared.isdigit() or int(declared) > self._body_limit
            ):
                return _body_too_large(self._body_limit).response
            request = Request(request.scope, limited_receive(request.receive, self._body_limit))
        try:
            response: Response = await super().handle_request(request)
        except _Refused as refused:
            return refused.response
        return response

    async def extract_data_from_request(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != JSON_CONTENT_TYPE:
            raise _Refused(
                f"POST a JSON body with Content-Type: {JSON_CONTENT_TYPE}",
                status=400,
                code=BAD_USER_INPUT,
            )
        try:
            return await request.json()
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise _Refused(
                "the request body is not valid JSON", status=400, code=BAD_USER_INPUT
            ) from exc


# List fields whose `limit` argument multiplies the cost of what they return.
PAGED_FIELDS = {("Query", "getNotifications"), ("Query", "leads")}
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


def query_parser(limits: Limits) -> Callable[[Any, dict[str, Any]], DocumentNode]:
    """ariadne's `query_parser`: graphql-core's parser, stopped after `graphql_max_tokens`.

    Documents are remembered per query text, like validation answers (same bounds): clients
    send the same few texts again and again, and parsing one costs as much as the unread
    count's whole query. A parsed document is never changed by validation or execution, so
    requests can share it. A text that does not parse is not remembered (it raises each time).
    """
    documents: BoundedCache[str, DocumentNode] = BoundedCache(VALIDATION_CACHE_ENTRIES)

    def parse_with_limits(_context: Any, data: dict[str, Any]) -> DocumentNode:
        query = data["query"]
        cacheable = isinstance(query, str) and len(query) <= CACHED_QUERY_MAX_CHARS
        if cacheable:
            document = documents.get(query)
            if document is not None:
                return document
        document = parse(
            query,
            max_lexical_tokens=limits.graphql_max_tokens,
            max_comments=limits.graphql_max_tokens,
        )
        if cacheable:
            documents.put(query, document)
        return document

    return parse_with_limits


def depth_limit_rule(max_depth: int) -> type[ASTValidationRule]:
    """Refuses an operation whose selections nest deeper than `max_depth`.

    Fragments count where they are spread. Each fragment's own depth is computed once, so a
    document that spreads fragments into each other many times costs linear time, and a cycle
    (which NoFragmentCyclesRule reports) ends the walk instead of looping. Introspection fields
    are left to MaxIntrospectionDepthRule (and refused outright outside development).
    """

    class DepthLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragment_depths: dict[str, int] = {}
            self._visiting: set[str] = set()

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            depth = self._depth(node.selection_set)
            if depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"the query nests {depth} levels deep; the most allowed is {max_depth}",
                        node,
                    )
                )

        def _depth(self, selection_set: SelectionSetNode | None) -> int:
            if selection_set is None:
                return 0
            deepest = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    if selection.name.value in INTROSPECTION_ROOTS:
                        continue
                    below = self._depth(selection.selection_set)
                    deepest = max(deepest, 1 + below)
                elif isinstance(selection, InlineFragmentNode):
                    deepest = max(deepest, self._depth(selection.selection_set))
                elif isinstance(selection, FragmentSpreadNode):
                    deepest = max(deepest, self._fragment_depth(selection.name.value))
            return deepest

        def _fragment_depth(self, name: str) -> int:
            if name in self._fragment_depths:
                return self._fragment_depths[name]
            fragment = self.context.get_fragment(name)
            if fragment is None or name in self._visiting:
                return 0
            self._visiting.add(name)
            depth = self._depth(fragment.selection_set)
            self._visiting.discard(name)
            self._fragment_depths[name] = depth
            return depth

    return DepthLimitRule


def alias_limit_rule(max_aliases: int) -> type[ASTValidationRule]:
    """Refuses a document with more than `max_aliases` aliased fields: aliases are how one
    request asks for the same expensive field many times over."""

    class AliasLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._aliases = 0
            self._reported = False

        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            if node.alias is None:
                return
            self._aliases += 1
            if self._aliases > max_aliases and not self._reported:
                self._reported = True
                self.report_error(
                    GraphQLError(f"the query has more than {max_aliases} aliases", node)
                )

    return AliasLimitRule


@cache
def cost_map(schema: GraphQLSchema) -> dict[str, dict[str, Any]]:
    """Every field of every object type costs 1; paged lists multiply by their `limit`."""
    costs: dict[str, dict[str, Any]] = {}
    for type_name, named_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(named_type, GraphQLObjectType):
            continue
        costs[type_name] = {
            field_name: (
                {"complexity": 1, "multipliers": ["limit"]}
                if (type_name, field_name) in PAGED_FIELDS
                else {"complexity": 1}
            )
            for field_name in named_type.fields
        }
    return costs


class _OwnErrorsOnly:
    """A validation context that passes on the cost rule's own error only. The rule also reports
    argument values it cannot read (an Int beyond 32 bits), which the specification's rules
    already report: one error for one mistake."""

    def __init__(self, context: ValidationContext) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def report_error(self, error: GraphQLError) -> None:
        if error.original_error is None:
            self._context.report_error(error)


class _PageAwareCostValidator(CostValidator):
    """ariadne's cost validator, counting an omitted `limit` as the default page size."""

    def __init__(self, context: ValidationContext, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        self.context = _OwnErrorsOnly(context)  # type: ignore[assignment]

    def get_multipliers_from_string(
        self, multipliers: list[str], field_args: dict[str, Any]
    ) -> list[int]:
        if "limit" in multipliers and field_args.get("limit") is None:
            field_args = {**field_args, "limit": DEFAULT_PAGE_SIZE}
        result: list[int] = super().get_multipliers_from_string(multipliers, field_args)
        return result


def cost_limit_rule(
    schema: GraphQLSchema, max_cost: int, variables: dict[str, Any] | None
) -> type[ASTValidationRule]:
    costs = cost_map(schema)

    class CostLimitRule(_PageAwareCostValidator):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(
                context,
                maximum_cost=max_cost,
                default_cost=1,
                variables=variables,
                cost_map=costs,
            )

    return CostLimitRule


def cost_variables(document: DocumentNode) -> frozenset[str]:
    """The variables the cost rule can read: those in the arguments of the paged list fields.

    The rule reads every argument of a field (graphql-core's get_argument_values), but only a
    paged field's arguments change its answer: its `limit` multiplies, and an argument that
    cannot be read there leaves the limit unread. Fields are matched by name whatever their
    parent type, which can only add variables to the set, never miss one.
    """
    names: set[str] = set()
    paged = {field for _type, field in PAGED_FIELDS}

    def variables_in(value: Any) -> None:
        if isinstance(value, VariableNode):
            names.add(value.name.value)
        elif isinstance(value, ListValueNode):
            for item in value.values:
                variables_in(item)
        elif isinstance(value, ObjectValueNode):
            for field in value.fields:
                variables_in(field.value)

    class _PagedArguments(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            if node.name.value in paged:
                for argument in node.arguments or ():
                    variables_in(argument.value)

    visit(document, _PagedArguments())
    return frozenset(names)


def validation_rules(
    schema: GraphQLSchema, limits: Limits
) -> Callable[[Any, DocumentNode, Any], Collection[type[ASTValidationRule]]]:
    """ariadne's `validation_rules`, per request: the cost depends on the request's variables.

    The cost rule and the validation answer are remembered per query text and the values of
    only the variables the cost rule can read (`cost_variables`): createLead's input differs on
    every request and must not make a new rule class, and a new validation, each time.
    """
    depth = depth_limit_rule(limits.graphql_max_depth)
    aliases = alias_limit_rule(limits.graphql_max_aliases)
    # The cost rule of each cached (query, cost variables) pair, made once: making a rule class
    # costs more than looking up the validation answer it leads to.
    cost_rules: BoundedCache[tuple[str, str], type[ASTValidationRule]] = BoundedCache(
        VALIDATION_CACHE_ENTRIES
    )
    read_by_cost: BoundedCache[str, frozenset[str]] = BoundedCache(VALIDATION_CACHE_ENTRIES)

    def rules(
        _context: Any, document: DocumentNode, data: Any
    ) -> Collection[type[ASTValidationRule]]:
        raw = data.get("variables") if isinstance(data, dict) else None
        variables = raw if isinstance(raw, dict) else None
        query = data.get("query") if isinstance(data, dict) else None
        key = None
        if isinstance(query, str) and len(query) <= CACHED_QUERY_MAX_CHARS:
            names = read_by_cost.get(query)
            if names is None:
                names = cost_variables(document)
                read_by_cost.put(query, names)
            read = (
                {name: variables[name] for name in names if name in variables} if variables else {}
            )
            # Variables that JSON cannot hold again are validated without the cache.
            with contextlib.suppress(TypeError, ValueError, RecursionError):
                key = (query, json.dumps(read, sort_keys=True))
        cost = cost_rules.get(key) if key is not None else None
        if cost is None:
            cost = cost_limit_rule(schema, limits.graphql_max_cost, variables)
            if key is not None:
                cost.cache_key = key  # type: ignore[attr-defined]
                cost_rules.put(key, cost)
        return (MaxIntrospectionDepthRule, depth, aliases, cost)

    return rules


# What validation answered for a (query text, cost variables) pair, per app. The same documents
# come back on every request of every client, and validating one page query costs as much as
# resolving a third of it (bench/RESULTS.md). Bounded in entries and in query size.
CACHED_QUERY_MAX_CHARS = 8 * 1024
VALIDATION_CACHE_ENTRIES = 512


def caching_validator() -> Callable[..., list[GraphQLError]]:
    """ariadne's `query_validator`: graphql-core's `validate`, remembered per request text.

    The result depends on the document, the variables the cost rule reads and the rules, which
    are fixed for one app but for the cost rule: `validation_rules` tags that rule with the
    (query, cost variables) pair, and only a tagged request is looked up or stored."""
    answers: BoundedCache[tuple[str, str], list[GraphQLError]] = BoundedCache(
        VALIDATION_CACHE_ENTRIES
    )

    def validate_cached(
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: Collection[type[ASTValidationRule]] | None = None,
        max_errors: int | None = None,
        **kwargs: Any,
    ) -> list[GraphQLError]:
        # The tagged rule is one of the app's own, which ariadne puts after the specified ones.
        ordered = list(rules or ())
        key = next((k for r in reversed(ordered) if (k := getattr(r, "cache_key", None))), None)
        known = answers.get(key) if key is not None else None
        if known is not None:
            return list(known)
        errors = validate(schema, document, rules=rules, max_errors=max_errors, **kwargs)
        if key is not None:
            answers.put(key, list(errors))
        return errors

    return validate_cached
