"""Leads: Query.leads, Query.lead, Mutation.createLead/updateLead/deleteLead.

They write leads only; the lead_created and score_updated notifications come from triggers.
"""

from __future__ import annotations

from typing import Any, cast

from ariadne import MutationType, QueryType

from server.errors import BadInput, NotFound
from server.graphql.context import Info, RequestContext
from server.graphql.inputs import offset_value, page_size, required_text
from server.graphql.retry import retried_when_aborted
from server.store.leads import (
    LeadChanges,
    LeadRow,
    lead_by_id,
    lead_delete,
    lead_insert,
    lead_list,
    lead_update,
)

query = QueryType()
mutation = MutationType()

_REQUIRED_TEXT = ("firstName", "lastName", "status")


@query.field("leads")
async def resolve_leads(
    _obj: None, info: Info, limit: int | None = None, offset: int | None = None
) -> list[LeadRow]:
    ctx: RequestContext = info.context
    size, skip = page_size(limit), offset_value(offset)
    async with ctx.connection() as conn:
        return await lead_list(conn, limit=size, offset=skip)


@query.field("lead")
async def resolve_lead(_obj: None, info: Info, id: int) -> LeadRow | None:
    """Null for an unknown id: the field is nullable, so "no such lead" is an answer."""
    ctx: RequestContext = info.context
    async with ctx.connection() as conn:
        return await lead_by_id(conn, id=id)


@mutation.field("createLead")
@retried_when_aborted
async def resolve_create_lead(_obj: None, info: Info, input: dict[str, Any]) -> LeadRow:
    ctx: RequestContext = info.context
    status = input.get("status")
    first_name = required_text(input["firstName"], name="firstName")
    last_name = required_text(input["lastName"], name="lastName")
    async with ctx.statement() as conn:  # one INSERT: the lead, its notification by trigger
        return await lead_insert(
            conn,
            first_name=first_name,
            last_name=last_name,
            email=input.get("email"),
            phone=input.get("phone"),
            company=input.get("company"),
            status=None if status is None else required_text(status, name="status"),
            score=input.get("score"),
        )


@mutation.field("updateLead")
@retried_when_aborted
async def resolve_update_lead(_obj: None, info: Info, id: int, input: dict[str, Any]) -> LeadRow:
    ctx: RequestContext = info.context
    changes: dict[str, Any] = {}
    for name, value in input.items():  # only the fields the caller sent
        if name in _REQUIRED_TEXT:
            changes[name] = required_text(value, name=name)
        elif name == "score" and value is None:
            raise BadInput("score must not be null")
        else:
            changes[name] = value
    async with ctx.connection() as conn:
        lead = await lead_update(conn, id=id, changes=cast(LeadChanges, changes))
    if lead is None:
        raise NotFound("lead not found")
    return lead


@mutation.field("deleteLead")
@retried_when_aborted
async def resolve_delete_lead(_obj: None, info: Info, id: int) -> bool:
    ctx: RequestContext = info.context
    async with ctx.connection() as conn:
        deleted = await lead_delete(conn, id=id)
    if not deleted:
        raise NotFound("lead not found")
    return True
