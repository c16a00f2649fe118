"""The specification's curl sequence, end to end."""

from __future__ import annotations

import psycopg
from psycopg.rows import DictRow

from tests.graphql.conftest import Api, User

LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { token user { id email } }
}"""
CREATE_LEAD = """
mutation { createLead(input: {firstName: "John", lastName: "Doe", email: "john@example.com"}) {
  id firstName lastName email status score createdAt updatedAt
} }"""
FEED = """
{ getNotifications { id type title message isRead relatedLeadId relatedLead { id firstName }
  createdAt updatedAt cursor } }"""


async def test_login_create_lead_feed_mark_read_and_count_follow_the_seed(
    anonymous_api: Api, user: User, committed_db: psycopg.Connection[DictRow]
) -> None:
    login = await anonymous_api.ok(
        LOGIN, {"input": {"email": user.email, "password": user.password}}
    )
    api = Api(anonymous_api.client, token=login["login"]["token"])
    assert login["login"]["user"] == {"id": user.id, "email": user.email}

    lead = (await api.ok(CREATE_LEAD))["createLead"]
    assert (lead["firstName"], lead["lastName"], lead["status"], lead["score"]) == (
        "John",
        "Doe",
        "new",
        0,
    )

    (notification,) = (await api.ok(FEED))["getNotifications"]
    assert notification["type"] == "lead_created"
    assert notification["title"] == "New Lead Created"
    assert notification["message"] == "John Doe added to pipeline"
    assert notification["isRead"] is False
    assert notification["relatedLeadId"] == lead["id"]
    assert notification["relatedLead"] == {"id": lead["id"], "firstName": "John"}
    assert notification["createdAt"].endswith("Z")
    assert (await api.ok("{ getUnreadCount }"))["getUnreadCount"] == 1

    read = await api.ok(
        "mutation($id: String!) { markAsRead(id: $id) { id isRead } }",
        {"id": notification["id"]},
    )
    assert read["markAsRead"] == {"id": notification["id"], "isRead": True}

    unread = (await api.ok("{ getUnreadCount }"))["getUnreadCount"]
    row = committed_db.execute(
        'SELECT count(*) AS n FROM notifications WHERE NOT "isRead"'
    ).fetchone()
    assert row is not None
    assert unread == row["n"] == 0
