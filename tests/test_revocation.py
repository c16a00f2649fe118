"""The per-process revocation cache (server/revocation.py), without a database."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from server.auth import Claims
from server.errors import Unauthenticated
from server.revocation import EVERY_USER, Revocations, TokenState

USER = UUID("00000000-0000-4000-8000-00000000000a")


def claims(iat: int = 1_000) -> Claims:
    return Claims(sub=str(USER), email="a@example.com", iat=iat, exp=iat + 3600)


class FakeTable:
    def __init__(self) -> None:
        self.state = TokenState(exists=True)
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def load(self, _user: UUID) -> TokenState:
        self.reads += 1
        state = self.state
        if self.gate is not None:
            await self.gate.wait()
        return state


async def test_a_trusted_cache_reads_a_user_once_and_an_announcement_makes_it_read_again() -> None:
    table = FakeTable()
    revocations = Revocations(table.load)
    revocations.resume()
    await revocations.check(claims())
    await revocations.check(claims())
    assert table.reads == 1

    revoked: list[str | None] = []
    revocations.on_revoked = revoked.append
    table.state = TokenState(exists=False)
    revocations.revoke(str(USER))
    assert revoked == [str(USER)]
    with pytest.raises(Unauthenticated):
        await revocations.check(claims())
    assert table.reads == 2


async def test_tokens_older_than_the_reset_second_are_refused_and_that_second_accepted() -> None:
    table = FakeTable()
    table.state = TokenState(exists=True, valid_after=2_000)
    revocations = Revocations(table.load)
    revocations.resume()
    with pytest.raises(Unauthenticated):
        await revocations.check(claims(iat=1_999))
    await revocations.check(claims(iat=2_000))


async def test_while_the_listener_is_down_nothing_is_cached() -> None:
    table = FakeTable()
    revocations = Revocations(table.load)  # never resumed: not trusted
    await revocations.check(claims())
    await revocations.check(claims())
    assert table.reads == 2
    revocations.resume()
    await revocations.check(claims())
    revocations.suspend()
    assert revocations.cached == 0


async def test_a_read_that_raced_an_announcement_is_not_cached() -> None:
    table = FakeTable()
    revocations = Revocations(table.load)
    revocations.resume()
    table.gate = asyncio.Event()
    check = asyncio.create_task(revocations.check(claims()))
    await asyncio.sleep(0)  # the read began: it saw the user before the delete
    revocations.revoke(str(USER))
    table.gate.set()
    await check  # this request was concurrent with the delete: it may pass
    assert revocations.cached == 0  # but what it read is not kept


async def test_a_truncate_forgets_everyone_and_disconnects_every_socket() -> None:
    table = FakeTable()
    revocations = Revocations(table.load)
    revocations.resume()
    await revocations.check(claims())
    revoked: list[str | None] = []
    revocations.on_revoked = revoked.append
    revocations.revoke(EVERY_USER)
    assert revoked == [None]
    assert revocations.cached == 0


async def test_a_token_whose_subject_is_not_a_uuid_is_refused() -> None:
    revocations = Revocations(FakeTable().load)
    with pytest.raises(Unauthenticated):
        await revocations.check(Claims(sub="u", email="a@example.com", iat=1, exp=2))
