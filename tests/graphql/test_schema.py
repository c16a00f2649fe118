from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    lexicographic_sort_schema,
    print_schema,
)

from server.graphql import executable_schema
from tests.graphql.conftest import Api, running_api, settings_for

CONTRACT_SDL = Path(__file__).with_name("contract.graphql")


def test_served_schema_is_exactly_the_contract_sdl() -> None:
    contract = build_schema(CONTRACT_SDL.read_text())
    served = executable_schema()

    assert print_schema(lexicographic_sort_schema(served)) == print_schema(
        lexicographic_sort_schema(contract)
    )
    for old, new in ((contract, served), (served, contract)):
        assert find_breaking_changes(old, new) == []
        assert find_dangerous_changes(old, new) == []


async def test_get_graphql_serves_graphiql_in_development(anonymous_api: Api) -> None:
    response = await anonymous_api.client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_post_graphql_answers_at_the_exact_path_without_redirect(
    anonymous_api: Api,
) -> None:
    response = await anonymous_api.client.post("/graphql", json={"query": "{ __typename }"})

    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.fixture(scope="module")
async def production_api(database_url: str):  # type: ignore[no-untyped-def]
    async with running_api(settings_for(database_url, app_env="production")) as api:
        yield api


async def test_production_serves_no_explorer_and_refuses_introspection(
    production_api: Api,
) -> None:
    page = await production_api.client.get("/graphql", headers={"Accept": "text/html"})
    introspection = await production_api.gql("{ __schema { types { name } } }")

    assert page.status_code == 405
    assert "graphiql" not in page.text.lower()
    assert introspection.data is None
    assert introspection.codes == ["BAD_USER_INPUT"]
    assert "introspection" in introspection.errors[0]["message"].lower()


async def test_health_and_readiness_still_answer(anonymous_api: Api) -> None:
    assert (await anonymous_api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous_api.client.get("/readyz")).status_code == 200
