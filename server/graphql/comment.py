"""Comments: Mutation.addComment (comment_added comes from a trigger)."""

from __future__ import annotations

from ariadne import MutationType

from server.errors import NotFound
from server.graphql.context import Info, RequestContext
from server.graphql.inputs import required_text
from server.graphql.retry import retried_when_aborted
from server.store.comments import CommentRow, comment_insert

mutation = MutationType()


@mutation.field("addComment")
@retried_when_aborted
async def resolve_add_comment(_obj: None, info: Info, leadId: int, body: str) -> CommentRow:
    ctx: RequestContext = info.context
    text = required_text(body, name="body")
    author_email = ctx.claims()["email"]  # the signed-in user
    async with ctx.connection() as conn:
        comment = await comment_insert(conn, lead_id=leadId, body=text, author_email=author_email)
    if comment is None:
        raise NotFound("lead not found")
    return comment
