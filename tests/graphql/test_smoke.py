from __future__ import annotations

from tests.graphql.conftest import Api


async def test_me_answers_the_signed_in_user(api: Api) -> None:
    data = await api.ok("{ me { id email } }")
    assert data["me"]["email"] == "ada@example.com"
