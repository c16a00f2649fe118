"""Notifications: the feed, the unread count, the read/delete mutations and the type's fields."""

from __future__ import annotations

from asyncio import Future

from ariadne import MutationType, ObjectType, QueryType

from server.cursors import decode_cursor
from server.errors import BadInput, NotFound
from server.graphql.context import Info, RequestContext
from server.graphql.execution import row_resolver
from server.graphql.inputs import page_size, uuid_id
from server.graphql.retry import retried_when_aborted
from server.serialization import notification_cursor
from server.store.leads import LeadRow
from server.store.notifications import (
    NotificationRow,
    notification_catch_up,
    notification_delete,
    notification_feed_before,
    notification_mark_all_read,
    notification_mark_read,
    unread_count,
)

query = QueryType()
mutation = MutationType()
notification = ObjectType("Notification")


@query.field("getNotifications")
async def resolve_get_notifications(
    _obj: None,
    info: Info,
    limit: int | None = None,
    before: str | None = None,
    after: str | None = None,
    unreadOnly: bool | None = None,
) -> list[NotificationRow]:
    ctx: RequestContext = info.context
    size = page_size(limit)
    if before is not None and after is not None:
        raise BadInput("pass before or after, not both")
    secret = ctx.settings.jwt_secret
    unread_only = bool(unreadOnly)
    if after is not None:
        cursor = decode_cursor(after, secret)
        async with ctx.connection() as conn:
            return await notification_catch_up(
                conn, after=cursor, limit=size, unread_only=unread_only
            )
    older_than = decode_cursor(before, secret) if before is not None else None
    async with ctx.statement() as conn:
        return await notification_feed_before(
            conn,
            limit=size,
            unread_only=unread_only,
            before_created_at=older_than.created_at if older_than else None,
            before_id=older_than.id if older_than else None,
        )


@query.field("getUnreadCount")
async def resolve_get_unread_count(_obj: None, info: Info) -> int:
    ctx: RequestContext = info.context
    async with ctx.statement() as conn:
        return await unread_count(conn)


@mutation.field("markAsRead")
@retried_when_aborted
async def resolve_mark_as_read(_obj: None, info: Info, id: str) -> NotificationRow:
    ctx: RequestContext = info.context
    notification_id = uuid_id(id)
    async with ctx.connection() as conn:
        row = await notification_mark_read(conn, id=notification_id)
    if row is None:
        raise NotFound("notification not found")
    return row


@mutation.field("markAllAsRead")
@retried_when_aborted
async def resolve_mark_all_as_read(_obj: None, info: Info) -> int:
    ctx: RequestContext = info.context
    async with ctx.connection() as conn:
        return await notification_mark_all_read(conn)


@mutation.field("deleteNotification")
@retried_when_aborted
async def resolve_delete_notification(_obj: None, info: Info, id: str) -> bool:
    ctx: RequestContext = info.context
    notification_id = uuid_id(id)
    async with ctx.connection() as conn:
        deleted = await notification_delete(conn, id=notification_id)
    if not deleted:
        raise NotFound("notification not found")
    return True


@notification.field("cursor")
@row_resolver
def resolve_cursor(row: NotificationRow, info: Info) -> str:
    ctx: RequestContext = info.context
    return notification_cursor(row, cursor_secret=ctx.settings.jwt_secret)


@notification.field("relatedLead")
def resolve_related_lead(row: NotificationRow, info: Info) -> Future[LeadRow | None] | None:
    """Batched: one statement loads the leads of a whole page (see RequestContext)."""
    if row["relatedLeadId"] is None:
        return None
    ctx: RequestContext = info.context
    return ctx.lead_loader.load(row["relatedLeadId"])
