"""Tokens that outlive their user: refused once the user is deleted or their password reset.

A token is a signature, valid until it expires; what ends it early is the user's current state
in the database: gone, or a password changed after the token was issued ("tokensValidAfter",
set by a trigger). Reading that on every request would cost a query per request, so each process
caches it per user, filled on first use. The cache is only as good as what invalidates it: the
triggers announce every deletion and password change on the channel `user_revocations` (every
writer, psql included), the LISTEN connection of each process hears it, and `revoke` drops the
entry and disconnects the user's sockets. While that connection is down announcements are lost,
so the cache is emptied and not used (each check reads the database) until it is back; then
`on_resumed` has the sockets still open checked again, since their user may have gone meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from server import db
from server.auth import Claims
from server.errors import Unauthenticated
from server.store.users import user_token_state

logger = logging.getLogger(__name__)

CHANNEL: Final = "user_revocations"
# The payload of a TRUNCATE of users: every user.
EVERY_USER: Final = "*"
REVOKED_MESSAGE: Final = "invalid or expired token"
MAX_ENTRIES: Final = 100_000


@dataclass(frozen=True)
class TokenState:
    """A user's state as far as tokens go; `exists=False` refuses every token."""

    exists: bool
    # Tokens with an `iat` (whole seconds) below this are refused; None: never reset. A token
    # issued in the same second as the reset is accepted: `iat` has no finer grain, and refusing
    # would refuse the fresh sign-in that follows a reset.
    valid_after: int | None = None

    def accepts(self, iat: int) -> bool:
        if not self.exists:
            return False
        return self.valid_after is None or iat >= self.valid_after


Load = Callable[[UUID], Awaitable[TokenState]]
# Called with the user id whose sockets must go, or None for every socket.
OnRevoked = Callable[[str | None], None]


def database_loader(pool: db.Pool) -> Load:
    async def load(uid: UUID) -> TokenState:
        async with db.connection(pool) as conn:
            row = await user_token_state(conn, id=uid)
        return TokenState(exists=False) if row is None else TokenState(True, row["validAfter"])

    return load


def user_id(claims: Claims) -> UUID:
    try:
        return UUID(claims["sub"])
    except ValueError as exc:
        raise Unauthenticated(REVOKED_MESSAGE) from exc


class Revocations:
    """Per process: user id → TokenState, trusted only while the LISTEN connection is up."""

    def __init__(self, load: Load, *, max_entries: int = MAX_ENTRIES) -> None:
        self._load = load
        self._max_entries = max_entries
        self._states: dict[UUID, TokenState] = {}
        # Bumped by every invalidation: a load that began before one must not be cached, since it
        # may have read the user before the change it announces.
        self._generation = 0
        self._trusted = False
        self.on_revoked: OnRevoked | None = None
        # Called when the LISTEN connection is back after a loss (not at the first start).
        self.on_resumed: Callable[[], None] | None = None
        self.loads = 0  # database reads (tests and metrics)

    @property
    def cached(self) -> int:
        return len(self._states)

    async def check(self, claims: Claims) -> None:
        """Unauthenticated when the token's user is gone or reset their password since `iat`.

        May read the database (DatabaseUnavailable then propagates)."""
        if not await self.accepts(user_id(claims), claims["iat"]):
            raise Unauthenticated(REVOKED_MESSAGE)

    async def accepts(self, uid: UUID, iat: int) -> bool:
        """Whether a token of `uid` issued at `iat` still works (may read the database)."""
        state = self._states.get(uid)
        if state is None:
            generation = self._generation
            state = await self._load(uid)
            self.loads += 1
            if self._trusted and generation == self._generation:
                if len(self._states) >= self._max_entries:
                    # Oldest first (dicts keep insertion order); it is read again when needed.
                    del self._states[next(iter(self._states))]
                self._states[uid] = state
        return state.accepts(iat)

    def revoke(self, payload: str) -> None:
        """An announcement from `user_revocations`: forget the user, disconnect their sockets."""
        self._generation += 1
        target: str | None
        if payload == EVERY_USER:
            self._states.clear()
            target = None
        else:
            try:
                uid = UUID(payload)
            except ValueError:
                # Not ours, or damaged: forgetting everything is safe, only slower.
                logger.warning("action=revocation_malformed payload=%.100r", payload)
                self._states.clear()
                return
            self._states.pop(uid, None)
            target = str(uid)
        logger.info("action=user_tokens_revoked user=%s", target or EVERY_USER)
        if self.on_revoked is not None:
            self.on_revoked(target)

    def suspend(self) -> None:
        """The LISTEN connection is down: announcements may be lost, so nothing is cached."""
        self._trusted = False
        self._generation += 1
        self._states.clear()

    def resume(self, *, after_loss: bool = False) -> None:
        """LISTEN is (back) up: what was cached before may be stale, so start empty."""
        self._generation += 1
        self._states.clear()
        self._trusted = True
        if after_loss and self.on_resumed is not None:
            self.on_resumed()
