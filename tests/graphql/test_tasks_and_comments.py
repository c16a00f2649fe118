from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import DictRow

from tests.graphql.conftest import Api, User


def new_lead(conn: psycopg.Connection[DictRow]) -> int:
    row = conn.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('John', 'Doe') RETURNING id"""
    ).fetchone()
    assert row is not None
    lead_id: int = row["id"]
    return lead_id


def messages(conn: psycopg.Connection[DictRow]) -> list[str]:
    rows = conn.execute('SELECT message FROM notifications ORDER BY "createdAt", id')
    return [row["message"] for row in rows]


async def test_create_task_then_complete_it_once_notifies_once(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead_id = new_lead(committed_db)

    task = (
        await api.ok(
            f'mutation {{ createTask(leadId: {lead_id}, title: "Call back") {{'
            " id leadId title completedAt createdAt } }"
        )
    )["createTask"]
    complete = f"mutation {{ completeTask(id: {task['id']}) {{ id completedAt }} }}"
    done = (await api.ok(complete))["completeTask"]
    again = (await api.ok(complete))["completeTask"]

    assert (task["leadId"], task["title"], task["completedAt"]) == (lead_id, "Call back", None)
    assert done["completedAt"] is not None
    assert again == done
    assert messages(committed_db) == [
        "John Doe added to pipeline",
        "Call back completed for John Doe",
    ]


async def test_add_comment_records_the_signed_in_users_email(
    api: Api, user: User, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead_id = new_lead(committed_db)

    comment = (
        await api.ok(
            f'mutation {{ addComment(leadId: {lead_id}, body: "Nice call") {{'
            " id leadId body authorEmail createdAt } }"
        )
    )["addComment"]

    assert (comment["leadId"], comment["body"], comment["authorEmail"]) == (
        lead_id,
        "Nice call",
        user.email,
    )
    assert messages(committed_db)[-1] == f"{user.email} commented on John Doe"


@pytest.mark.parametrize(
    "operation",
    ['createTask(leadId: $lead, title: "  ") { id }', 'addComment(leadId: $lead, body: "") { id }'],
)
async def test_blank_task_titles_and_comment_bodies_are_bad_user_input(
    api: Api, committed_db: psycopg.Connection[DictRow], operation: str
) -> None:
    lead_id = new_lead(committed_db)

    result = await api.gql(f"mutation($lead: Int!) {{ {operation} }}", {"lead": lead_id})

    assert result.codes == ["BAD_USER_INPUT"]
    assert messages(committed_db) == ["John Doe added to pipeline"]
