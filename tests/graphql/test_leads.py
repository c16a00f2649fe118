from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.rows import DictRow

from tests.graphql.conftest import Api

LEAD_FIELDS = "id firstName lastName email phone company status score createdAt updatedAt"


async def create_lead(api: Api, first: str = "John", last: str = "Doe", **extra: object) -> dict:
    data = await api.ok(
        f"mutation($input: CreateLeadInput!) {{ createLead(input: $input) {{ {LEAD_FIELDS} }} }}",
        {"input": {"firstName": first, "lastName": last, **extra}},
    )
    lead: dict = data["createLead"]
    return lead


def notifications(conn: psycopg.Connection[DictRow]) -> list[dict]:
    return conn.execute(
        'SELECT type::text, message, "relatedLeadId" FROM notifications ORDER BY "createdAt", id'
    ).fetchall()


async def test_create_lead_stores_every_field_and_the_trigger_writes_its_notification(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead = await create_lead(
        api, "Ada", "Lovelace", email="ada@x.io", phone="1", company="AE", status="hot", score=7
    )

    assert {k: lead[k] for k in ("email", "phone", "company", "status", "score")} == {
        "email": "ada@x.io",
        "phone": "1",
        "company": "AE",
        "status": "hot",
        "score": 7,
    }
    assert notifications(committed_db) == [
        {
            "type": "lead_created",
            "message": "Ada Lovelace added to pipeline",
            "relatedLeadId": lead["id"],
        }
    ]


@pytest.fixture
async def lead_triggers_disabled(committed_db: psycopg.Connection[DictRow]) -> AsyncIterator[None]:
    """In a thread: ALTER TABLE waits for the app's transactions, which need this loop."""

    def set_triggers(action: str) -> None:
        for trigger in ("_500_notify_created", "_510_notify_score_updated"):
            committed_db.execute(f"ALTER TABLE leads {action} TRIGGER {trigger}")

    await asyncio.to_thread(set_triggers, "DISABLE")
    try:
        yield
    finally:
        await asyncio.to_thread(set_triggers, "ENABLE")


@pytest.mark.usefixtures("lead_triggers_disabled")
async def test_resolvers_write_no_notifications_themselves_the_triggers_do(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead = await create_lead(api)
    await api.ok(f"mutation {{ updateLead(id: {lead['id']}, input: {{score: 5}}) {{ id }} }}")

    assert notifications(committed_db) == []


async def test_update_lead_changes_only_given_fields_and_a_score_change_notifies(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead = await create_lead(api, email="old@x.io", company="Acme")

    data = await api.ok(
        f"""mutation {{ updateLead(id: {lead["id"]}, input: {{score: 42, email: null}}) {{
            {LEAD_FIELDS} }} }}"""
    )

    updated = data["updateLead"]
    assert (updated["score"], updated["email"], updated["company"]) == (42, None, "Acme")
    assert (updated["firstName"], updated["lastName"]) == ("John", "Doe")
    assert [n["message"] for n in notifications(committed_db)] == [
        "John Doe added to pipeline",
        "John Doe score changed from 0 to 42",
    ]


async def test_update_lead_without_a_score_change_adds_no_notification(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead = await create_lead(api)
    await api.ok(f'mutation {{ updateLead(id: {lead["id"]}, input: {{status: "won"}}) {{ id }} }}')

    assert [n["type"] for n in notifications(committed_db)] == ["lead_created"]


async def test_leads_lists_newest_first_with_limit_and_offset(api: Api) -> None:
    ids = [(await create_lead(api, f"First{i}", "Last"))["id"] for i in range(3)]

    page = await api.ok("{ leads(limit: 2, offset: 1) { id } }")
    everything = await api.ok("{ leads { id } }")

    assert [lead["id"] for lead in everything["leads"]] == ids[::-1]
    assert [lead["id"] for lead in page["leads"]] == ids[::-1][1:3]


async def test_lead_returns_the_lead_or_null_for_an_unknown_id(api: Api) -> None:
    lead = await create_lead(api)

    found = await api.ok(f"{{ lead(id: {lead['id']}) {{ {LEAD_FIELDS} }} }}")
    missing = await api.ok("{ lead(id: 999999) { id } }")

    assert found["lead"] == lead
    assert missing["lead"] is None


async def test_delete_lead_removes_it_and_keeps_its_notifications_unlinked(
    api: Api, committed_db: psycopg.Connection[DictRow]
) -> None:
    lead = await create_lead(api)

    data = await api.ok(f"mutation {{ deleteLead(id: {lead['id']}) }}")

    assert data == {"deleteLead": True}
    assert notifications(committed_db)[0]["relatedLeadId"] is None
    feed = await api.ok("{ getNotifications { relatedLeadId relatedLead { id } } }")
    assert feed["getNotifications"] == [{"relatedLeadId": None, "relatedLead": None}]


@pytest.mark.parametrize(
    "operation",
    [
        'updateLead(id: 999999, input: {status: "x"}) { id }',
        "deleteLead(id: 999999)",
        'createTask(leadId: 999999, title: "Call") { id }',
        "completeTask(id: 999999) { id }",
        'addComment(leadId: 999999, body: "Hi") { id }',
    ],
)
async def test_unknown_ids_answer_not_found(api: Api, operation: str) -> None:
    result = await api.gql(f"mutation {{ {operation} }}")

    assert result.codes == ["NOT_FOUND"]
    assert result.data is None


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ('createLead(input: {firstName: "  ", lastName: "Doe"}) { id }', "firstName"),
        ('createLead(input: {firstName: "John", lastName: ""}) { id }', "lastName"),
        ('createLead(input: {firstName: "John", lastName: "Doe", status: " "}) { id }', "status"),
        ("updateLead(id: 1, input: {firstName: null}) { id }", "firstName"),
        ('updateLead(id: 1, input: {lastName: "   "}) { id }', "lastName"),
        ("updateLead(id: 1, input: {score: null}) { id }", "score"),
    ],
)
async def test_empty_or_blank_names_answer_bad_user_input(
    api: Api, committed_db: psycopg.Connection[DictRow], operation: str, field: str
) -> None:
    result = await api.gql(f"mutation {{ {operation} }}")

    assert result.codes == ["BAD_USER_INPUT"]
    assert field in result.errors[0]["message"]
    assert committed_db.execute("SELECT count(*) AS n FROM leads").fetchone() == {"n": 0}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ lead(id: 2147483648) { id } }", None),
        ("query($id: Int!) { lead(id: $id) { id } }", {"id": 2147483648}),
        ("mutation { deleteLead(id: -2147483649) }", None),
        (
            'mutation { createLead(input: {firstName: "A", lastName: "B", score: 1e12}) { id } }',
            None,
        ),
    ],
)
async def test_ints_beyond_32_bits_are_bad_user_input_not_server_errors(
    api: Api, query: str, variables: dict | None
) -> None:
    result = await api.gql(query, variables)

    assert result.status < 500
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.data is None


@pytest.mark.parametrize("limit", [0, -1, 201])
async def test_leads_limit_outside_1_to_200_is_bad_user_input(api: Api, limit: int) -> None:
    result = await api.gql(f"{{ leads(limit: {limit}) {{ id }} }}")

    assert result.codes == ["BAD_USER_INPUT"]


async def test_leads_negative_offset_is_bad_user_input(api: Api) -> None:
    assert (await api.gql("{ leads(offset: -1) { id } }")).codes == ["BAD_USER_INPUT"]
