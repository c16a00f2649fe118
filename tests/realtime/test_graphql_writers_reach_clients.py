"""Every GraphQL mutation that writes notifications reaches clients, through one real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow

from tests.realtime.harness import WAIT, RecordingClient, ServerProcess, token

NewClient = Callable[[], RecordingClient]
EMAIL = "grace@example.com"
NOTIFICATION_FIELDS = "id type title message isRead relatedLeadId createdAt updatedAt cursor"


class Api:
    def __init__(self, client: httpx.AsyncClient, bearer: str) -> None:
        self._client = client
        self._bearer = bearer

    async def ok(self, query: str, **variables: Any) -> Any:
        response = await self._client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self._bearer}"},
        )
        body = response.json()
        assert response.status_code == 200, body
        assert not body.get("errors"), body["errors"]
        return body["data"]


@pytest.fixture
async def api(
    server: ServerProcess, committed_db: psycopg.Connection[DictRow]
) -> AsyncIterator[Api]:
    row = committed_db.execute(
        """INSERT INTO users (email, "passwordHash") VALUES (%s, 'unused') RETURNING id""",
        (EMAIL,),
    ).fetchone()
    assert row is not None
    bearer = token(email=EMAIL)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        yield Api(client, bearer)


async def connected(new_client: NewClient, server: ServerProcess) -> RecordingClient:
    client = new_client()
    await client.connect(server.url, auth={"token": token(email=EMAIL)})
    await client.next_event("notifications:unread-count")
    return client


async def create_lead(api: Api, first: str = "Ada", last: str = "Lovelace") -> int:
    data = await api.ok(
        "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }",
        input={"firstName": first, "lastName": last},
    )
    return int(data["createLead"]["id"])


def of_type(kind: str) -> Callable[[Any], bool]:
    return lambda data: data["type"] == kind


async def test_create_lead_reaches_clients_as_the_notification_graphql_serves(
    server: ServerProcess, new_client: NewClient, api: Api
) -> None:
    client = await connected(new_client, server)
    lead_id = await create_lead(api)
    event = await client.next_event("notification:created", of_type("lead_created"))
    assert event["relatedLeadId"] == lead_id
    served = await api.ok(f"{{ getNotifications(limit: 1) {{ {NOTIFICATION_FIELDS} }} }}")
    (row,) = served["getNotifications"]
    # The same row, serialised the same way; only the cursor's read snapshot may differ.
    assert {k: v for k, v in event.items() if k != "cursor"} == {
        k: v for k, v in row.items() if k != "cursor"
    }


async def test_an_event_cursor_pages_forward_with_get_notifications_after(
    server: ServerProcess, new_client: NewClient, api: Api
) -> None:
    client = await connected(new_client, server)
    await create_lead(api, "First", "Lead")
    first = await client.next_event("notification:created")
    await create_lead(api, "Second", "Lead")
    second = await client.next_event("notification:created", lambda data: data["id"] != first["id"])
    newer = await api.ok(
        "query($after: String) { getNotifications(after: $after) { id } }", after=first["cursor"]
    )
    assert newer["getNotifications"] == [{"id": second["id"]}]


async def test_update_lead_score_complete_task_and_add_comment_reach_clients(
    server: ServerProcess, new_client: NewClient, api: Api
) -> None:
    lead_id = await create_lead(api)
    client = await connected(new_client, server)
    await api.ok(
        "mutation($id: Int!) { updateLead(id: $id, input: {score: 80}) { id } }", id=lead_id
    )
    score = await client.next_event("notification:created", of_type("score_updated"))
    assert score["message"] == "Ada Lovelace score changed from 0 to 80"

    task = await api.ok(
        'mutation($lead: Int!) { createTask(leadId: $lead, title: "Call") { id } }',
        lead=lead_id,
    )
    await api.ok(
        "mutation($id: Int!) { completeTask(id: $id) { id } }", id=int(task["createTask"]["id"])
    )
    done = await client.next_event("notification:created", of_type("task_completed"))
    assert done["message"] == "Call completed for Ada Lovelace"

    await api.ok(
        'mutation($lead: Int!) { addComment(leadId: $lead, body: "Hi") { id } }', lead=lead_id
    )
    comment = await client.next_event("notification:created", of_type("comment_added"))
    assert comment["message"] == f"{EMAIL} commented on Ada Lovelace"
    assert {event["relatedLeadId"] for event in (score, done, comment)} == {lead_id}


async def test_mark_as_read_reaches_clients_as_notification_updated(
    server: ServerProcess, new_client: NewClient, api: Api
) -> None:
    await create_lead(api)
    client = await connected(new_client, server)
    (row,) = (await api.ok("{ getNotifications { id } }"))["getNotifications"]
    await api.ok("mutation($id: String!) { markAsRead(id: $id) { id } }", id=row["id"])
    event = await client.next_event("notification:updated")
    assert (event["id"], event["isRead"]) == (row["id"], True)
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 0)


async def test_mark_all_as_read_reaches_clients_as_one_mark_all_read(
    server: ServerProcess, new_client: NewClient, api: Api
) -> None:
    for n in range(3):
        await create_lead(api, "Lead", str(n))
    client = await connected(new_client, server)
    changed = await api.ok("mutation { markAllAsRead }")
    assert changed == {"markAllAsRead": 3}
    event = await client.next_event("notifications:bulk-updated")
    assert event == {"action": "mark-all-read", "count": 3}
    await client.next_event("notifications:unread-count", lambda data: data["count"] == 0)
    assert client.named("notification:updated") == []


async def test_delete_notification_reaches_clients_as_notification_deleted(
    server: ServerProcess, new_client: NewClient, api: Api
) -> None:
    await create_lead(api)
    client = await connected(new_client, server)
    (row,) = (await api.ok("{ getNotifications { id } }"))["getNotifications"]
    assert await api.ok("mutation($id: String!) { deleteNotification(id: $id) }", id=row["id"]) == {
        "deleteNotification": True
    }
    assert await client.next_event("notification:deleted") == {"id": row["id"]}
