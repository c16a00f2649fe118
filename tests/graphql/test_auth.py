from __future__ import annotations

import time

import jwt
import psycopg
import pytest
from psycopg.rows import DictRow

from tests.graphql.conftest import SECRET, Api, User

LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token user { id email } } }"  # noqa: E501


async def test_login_returns_an_hs256_token_with_the_contract_claims(
    anonymous_api: Api, user: User
) -> None:
    data = await anonymous_api.ok(LOGIN, {"e": user.email, "p": user.password})

    token = data["login"]["token"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert (claims["sub"], claims["email"]) == (user.id, user.email)
    assert claims["exp"] - claims["iat"] == 3600  # JWT_EXPIRES_IN of the test settings
    assert data["login"]["user"] == {"id": user.id, "email": user.email}
    me = await anonymous_api.gql("{ me { id email } }", token=token)
    assert me.data == {"me": {"id": user.id, "email": user.email}}


async def test_login_compares_emails_case_insensitively(anonymous_api: Api, user: User) -> None:
    data = await anonymous_api.ok(LOGIN, {"e": " ADA@Example.COM ", "p": user.password})

    assert data["login"]["user"]["email"] == "ada@example.com"


async def test_login_ignores_a_stale_token_in_the_header(anonymous_api: Api, user: User) -> None:
    result = await anonymous_api.gql(
        LOGIN, {"e": user.email, "p": user.password}, token="not.a.token"
    )

    assert result.errors == []


async def test_wrong_email_and_wrong_password_get_the_same_error(
    anonymous_api: Api, user: User
) -> None:
    wrong_password = await anonymous_api.gql(LOGIN, {"e": user.email, "p": "wrong password"})
    wrong_email = await anonymous_api.gql(LOGIN, {"e": "nobody@example.com", "p": user.password})

    for result in (wrong_password, wrong_email):
        assert result.data is None
        assert result.codes == ["UNAUTHENTICATED"]
        assert result.errors[0]["message"] == "invalid email or password"
    assert wrong_password.body == wrong_email.body


async def test_an_unknown_email_costs_about_as_much_time_as_a_wrong_password(
    anonymous_api: Api, user: User
) -> None:
    async def fastest(email: str, tries: int = 3) -> float:
        times = []
        for _ in range(tries):
            started = time.perf_counter()
            await anonymous_api.gql(LOGIN, {"e": email, "p": "wrong password"})
            times.append(time.perf_counter() - started)
        return min(times)

    wrong_password = await fastest(user.email)
    unknown_email = await fastest("nobody@example.com")

    # Both run one argon2id verification; without the dummy hash the unknown email would be
    # an order of magnitude faster.
    assert unknown_email > 0.5 * wrong_password
    assert wrong_password > 0.5 * unknown_email


OPERATIONS = [
    "query { me { id } }",
    "query { getNotifications { id } }",
    "query { getUnreadCount }",
    "query { leads { id } }",
    "query($lead: Int!) { lead(id: $lead) { id } }",
    'mutation { createLead(input: {firstName: "Eve", lastName: "X"}) { id } }',
    "mutation($lead: Int!) { updateLead(id: $lead, input: {score: 99}) { id } }",
    "mutation($lead: Int!) { deleteLead(id: $lead) }",
    'mutation($lead: Int!) { createTask(leadId: $lead, title: "T") { id } }',
    "mutation($task: Int!) { completeTask(id: $task) { id } }",
    'mutation($lead: Int!) { addComment(leadId: $lead, body: "B") { id } }',
    "mutation($note: String!) { markAsRead(id: $note) { id } }",
    "mutation { markAllAsRead }",
    "mutation($note: String!) { deleteNotification(id: $note) }",
]


def expired_token(user: User) -> str:
    now = int(time.time())
    claims = {"sub": user.id, "email": user.email, "iat": now - 120, "exp": now - 60}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def foreign_token(user: User) -> str:
    now = int(time.time())
    claims = {"sub": user.id, "email": user.email, "iat": now, "exp": now + 60}
    return jwt.encode(claims, "another server's secret, long enough for hs256", algorithm="HS256")


def snapshot(conn: psycopg.Connection[DictRow]) -> list[object]:
    return [
        conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("users", "leads", "tasks", "comments", "notifications")
    ]


@pytest.mark.parametrize("credential", ["none", "garbage", "expired", "foreign", "not bearer"])
async def test_every_operation_but_login_needs_a_valid_token_and_changes_nothing_without(
    anonymous_api: Api, user: User, committed_db: psycopg.Connection[DictRow], credential: str
) -> None:
    lead = committed_db.execute(
        """INSERT INTO leads ("firstName", "lastName") VALUES ('A', 'B') RETURNING id"""
    ).fetchone()
    task = committed_db.execute(
        """INSERT INTO tasks ("leadId", title) VALUES (%s, 'T') RETURNING id""", (lead["id"],)
    ).fetchone()
    note = committed_db.execute("SELECT id FROM notifications").fetchone()
    variables = {"lead": lead["id"], "task": task["id"], "note": str(note["id"])}
    headers = {
        "none": {},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "expired": {"Authorization": f"Bearer {expired_token(user)}"},
        "foreign": {"Authorization": f"Bearer {foreign_token(user)}"},
        "not bearer": {"Authorization": f"Basic {user.token}"},
    }[credential]
    before = snapshot(committed_db)

    for operation in OPERATIONS:
        used = {k: v for k, v in variables.items() if f"${k}" in operation}
        response = await anonymous_api.client.post(
            "/graphql", json={"query": operation, "variables": used}, headers=headers
        )
        body = response.json()
        # null data, or the nullable field null (lead)
        assert body.get("data") in (None, {"lead": None}), operation
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], operation

    assert snapshot(committed_db) == before


async def test_me_for_a_deleted_user_is_unauthenticated(
    api: Api, user: User, committed_db: psycopg.Connection[DictRow]
) -> None:
    committed_db.execute("DELETE FROM users WHERE id = %s", (user.id,))

    result = await api.gql("{ me { id } }")

    assert result.codes == ["UNAUTHENTICATED"]
    assert result.data is None
