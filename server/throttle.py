"""Sign-in throttling: failed logins counted over a sliding window, in this process's memory.

Three counts, each over the last `window` seconds, each with its own ceiling:

* per email and client address together (small): one guesser cannot try many passwords on one
  account, and cannot lock its owner out either, because the owner signs in from another address;
* per email alone (larger): guessing spread over many addresses is bounded too;
* per client address alone: one address cannot try many accounts.

Only failures count, and a refused attempt is not a failure (its password is never checked, so no
argon2 work is spent on it either): once the failures stop, the oldest leave the window and sign-in
opens again by itself, after `window` seconds at most. Nothing locks an account for ever.

Why in memory, not in the database: a check costs no query and no write, so a flood of attempts
costs the database nothing; the price is that each server process counts for itself, so with N
processes behind a balancer a guesser gets up to N times the ceilings (still bounded) and a restart
forgets the counts. The number of keys kept is bounded, so a flood of made-up emails cannot grow
memory without end.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from server.errors import RateLimited
from server.settings import Limits

RATE_LIMITED_MESSAGE = "too many sign-in attempts; try again later"
# Keys beyond this are evicted oldest first (after expired ones): memory stays bounded.
MAX_KEYS = 100_000
# Longer emails are cut for the key: nothing real is longer (RFC 5321 allows 254).
_MAX_KEY_TEXT = 320


class LoginThrottle:
    def __init__(
        self,
        *,
        window_seconds: float,
        max_per_email_and_address: int,
        max_per_email: int,
        max_per_address: int,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = float(window_seconds)
        self._ceilings = {
            "pair": max_per_email_and_address,
            "email": max_per_email,
            "address": max_per_address,
        }
        self._max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    @classmethod
    def from_limits(cls, limits: Limits) -> LoginThrottle:
        return cls(
            window_seconds=limits.login_window_seconds,
            max_per_email_and_address=limits.login_max_failures_per_email_and_address,
            max_per_email=limits.login_max_failures_per_email,
            max_per_address=limits.login_max_failures_per_address,
        )

    def check(self, email: str, address: str) -> None:
        """Raise RateLimited (with the seconds to wait) when any count is at its ceiling."""
        now = self._clock()
        wait = 0.0
        for kind, key in self._keys(email, address):
            times = self._failures.get(key)
            if times is None:
                continue
            self._expire(times, now)
            ceiling = self._ceilings[kind]
            if len(times) >= ceiling:
                # The attempt is allowed again once enough of the oldest have left the window.
                wait = max(wait, times[len(times) - ceiling] + self._window - now)
        if wait > 0:
            raise RateLimited(RATE_LIMITED_MESSAGE, retry_after=max(1, math.ceil(wait)))

    def failed(self, email: str, address: str) -> None:
        now = self._clock()
        for _kind, key in self._keys(email, address):
            times = self._failures.pop(key, None)
            if times is None:
                times = deque()
            self._expire(times, now)
            times.append(now)
            self._failures[key] = times  # re-inserted: the dict's order is last-failure order
        if len(self._failures) > self._max_keys:
            self._shrink(now)

    def succeeded(self, email: str, address: str) -> None:
        """The owner got in from this address: their own typos there stop counting."""
        self._failures.pop(self._pair_key(email, address), None)

    @property
    def keys(self) -> int:
        return len(self._failures)

    def _keys(self, email: str, address: str) -> list[tuple[str, str]]:
        return [
            ("pair", self._pair_key(email, address)),
            ("email", "e:" + _normal(email)),
            ("address", "a:" + address),
        ]

    @staticmethod
    def _pair_key(email: str, address: str) -> str:
        return f"p:{address}:{_normal(email)}"

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self._window:
            times.popleft()

    def _shrink(self, now: float) -> None:
        for key in list(self._failures):
            times = self._failures[key]
            self._expire(times, now)
            if not times:
                del self._failures[key]
        # Down to 90%, so a flood of new keys costs this sweep once per many failures.
        while len(self._failures) > self._max_keys * 9 // 10:
            del self._failures[next(iter(self._failures))]


def _normal(email: str) -> str:
    return email.strip().lower()[:_MAX_KEY_TEXT]
