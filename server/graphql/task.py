"""Tasks: Mutation.createTask and Mutation.completeTask (task_completed comes from a trigger)."""

from __future__ import annotations

from ariadne import MutationType

from server.errors import NotFound
from server.graphql.context import Info, RequestContext
from server.graphql.inputs import required_text
from server.graphql.retry import retried_when_aborted
from server.store.tasks import TaskRow, task_complete, task_insert

mutation = MutationType()


@mutation.field("createTask")
@retried_when_aborted
async def resolve_create_task(_obj: None, info: Info, leadId: int, title: str) -> TaskRow:
    ctx: RequestContext = info.context
    text = required_text(title, name="title")
    async with ctx.connection() as conn:
        task = await task_insert(conn, lead_id=leadId, title=text)
    if task is None:
        raise NotFound("lead not found")
    return task


@mutation.field("completeTask")
@retried_when_aborted
async def resolve_complete_task(_obj: None, info: Info, id: int) -> TaskRow:
    ctx: RequestContext = info.context
    async with ctx.connection() as conn:
        task = await task_complete(conn, id=id)
    if task is None:
        raise NotFound("task not found")
    return task
