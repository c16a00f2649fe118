"""graphql-core's executor, with two shortcuts that give the same result (ariadne's
`execution_context_class`).

1. A cheaper "is this awaitable?" test. The executor asks it of every resolved value; nearly
   every value here is a plain str, int, bool, None, dict or list, which one type lookup answers.
2. Flat objects completed in one pass. A page of 50 notifications with nine fields is 450
   field executions, each with its own path, resolve info, resolver call and completion
   (bench/RESULTS.md, getNotifications profile). When an object's selection is only leaf fields
   (scalars, enums, `__typename`) without arguments, each read from the row by the default
   resolver or by a resolver marked `@row_resolver`, the object (or the whole list of them) is
   built here: the same values, through the same `coerce_output_value`, in the same key order.
   Anything else — an object-typed field, arguments, a deferred fragment, middleware, a value
   that is not a plain one, a null where the schema says non-null, a coercion that fails — is
   left to graphql-core's own path, which also produces the error. Resolvers taken here only read
   their row (and the request context), so running the general path after a refusal repeats no
   side effect. tests/graphql/test_fast_feed_equivalence.py compares both over generated queries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Final, TypeGuard, TypeVar
from uuid import UUID

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    Undefined,
    default_field_resolver,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.executor import Executor
from graphql.pyutils import AwaitableOrValue, Path
from graphql.pyutils import is_awaitable as library_is_awaitable

_PLAIN = frozenset({str, int, bool, float, type(None), dict, list, tuple, datetime, UUID})
# What a row's column holds, and what the fast path passes on to coercion; anything else (a
# callable the default resolver would call, an awaitable, an exception) takes the general path.
_LEAF_VALUES: Final = frozenset({str, int, bool, float, datetime, UUID})
_ROW_RESOLVER: Final = "_crm_row_resolver"

F = TypeVar("F", bound=Callable[..., Any])


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    return type(value) not in _PLAIN and library_is_awaitable(value)


def row_resolver(resolver: F) -> F:
    """Marks a resolver that reads only its row and `info.context`, returns a plain value at
    once and has no side effect: the fast path may call it with the resolve info of the field
    around its object."""
    setattr(resolver, _ROW_RESOLVER, True)
    return resolver


class _Refused(Exception):
    """The fast path met something only the general path may answer."""


# One leaf of a flat selection: response key, column, resolver (None: the column), type, and
# whether null is refused; `kind` names the coercions that can be skipped exactly.
_Leaf = tuple[str, str, Callable[..., Any] | None, GraphQLLeafType, bool, str]
Info = GraphQLResolveInfo[Any]
_Plan = tuple[_Leaf, ...] | None
_TYPENAME: Final = "__typename"


def _kind(leaf: GraphQLLeafType) -> str:
    # graphql-core returns a str for String and ID, and a bool for Boolean, unchanged.
    if leaf is GraphQLString or leaf is GraphQLID:
        return "str"
    if leaf is GraphQLBoolean:
        return "bool"
    return ""


def _complete_row(leaves: tuple[_Leaf, ...], row: Any, info: Info) -> dict[str, Any]:
    if type(row) is not dict:
        raise _Refused
    completed: dict[str, Any] = {}
    for key, column, resolver, leaf, non_null, kind in leaves:
        if resolver is None:
            value = row.get(column)
        else:
            try:
                value = resolver(row, info)
            except Exception as exc:  # the general path locates and reports it
                raise _Refused from exc
        if value is None:
            if non_null:
                raise _Refused
            completed[key] = None
            continue
        value_type = type(value)
        if value_type not in _LEAF_VALUES:
            raise _Refused
        if (kind == "str" and value_type is str) or (kind == "bool" and value_type is bool):
            completed[key] = value
            continue
        try:
            coerced = leaf.coerce_output_value(value)
        except Exception as exc:
            raise _Refused from exc
        if coerced is None or coerced is Undefined:
            raise _Refused
        completed[key] = coerced
    return completed


class FastExecutor(Executor[Any]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # the constructor sets the library's per instance
        # Keyed like graphql-core's collect_subfields memo; the field group is kept alive with
        # its plan, so its id cannot be reused during execution.
        self._flat_plans: dict[tuple[GraphQLObjectType, int], tuple[Any, _Plan]] = {}

    def _flat_plan(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> tuple[_Leaf, ...] | None:
        """The leaves of this object's selection, or None when it is not flat (memoized like
        graphql-core's collect_subfields, on the identity of the field group)."""
        key = (object_type, id(field_details_list))
        cached = self._flat_plans.get(key)
        if cached is not None:
            return cached[1]
        plan = self._build_flat_plan(object_type, field_details_list)
        self._flat_plans[key] = (field_details_list, plan)
        return plan

    def _build_flat_plan(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> tuple[_Leaf, ...] | None:
        if (
            self.middleware_manager is not None
            or self.field_resolver is not default_field_resolver
            or object_type.is_type_of is not None
        ):
            return None
        grouped, new_defer_usages, _forbidden = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return None
        leaves: list[_Leaf] = []
        for response_name, details in grouped.items():
            if any(d.fragment_variable_values is not None for d in details):
                return None
            node = details[0].node
            name = node.name.value
            if node.arguments:
                return None
            if name == _TYPENAME:
                leaves.append(
                    (response_name, name, _typename_of(object_type), GraphQLString, True, "str")
                )
                continue
            field = object_type.fields.get(name)
            if field is None or field.args:
                return None
            field_type = field.type
            non_null = is_non_null_type(field_type)
            named = get_nullable_type(field_type)
            if not is_leaf_type(named):
                return None
            resolver = field.resolve
            if resolver is not None and not getattr(resolver, _ROW_RESOLVER, False):
                return None
            leaves.append((response_name, name, resolver, named, non_null, _kind(named)))
        return tuple(leaves)

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Info,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        plan = self._flat_plan(return_type, field_details_list)
        if plan is not None:
            try:
                return _complete_row(plan, result, info)
            except _Refused:
                pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: Info,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        item_type = return_type.of_type
        non_null_items = is_non_null_type(item_type)
        object_type = get_nullable_type(item_type)
        if type(result) is list and is_object_type(object_type):
            plan = self._flat_plan(object_type, field_details_list)
            if plan is not None:
                try:
                    return _complete_rows(plan, result, info, non_null_items=non_null_items)
                except _Refused:
                    pass
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )


def _complete_rows(
    plan: tuple[_Leaf, ...],
    rows: Iterable[Any],
    info: Info,
    *,
    non_null_items: bool,
) -> list[Any]:
    completed: list[Any] = []
    for row in rows:
        if row is None:
            if non_null_items:
                raise _Refused
            completed.append(None)
        else:
            completed.append(_complete_row(plan, row, info))
    return completed


def _typename_of(object_type: GraphQLObjectType) -> Callable[[Any, GraphQLResolveInfo[Any]], str]:
    name = object_type.name

    def typename(_row: Any, _info: Info) -> str:
        return name

    return typename
