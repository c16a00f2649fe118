"""Sign-in throttling: failed logins counted over a sliding window, in this process's memory.

Three counts, each over the last `window` seconds, each with its own ceiling:

* per email and client address together (small): one guesser cannot try many passwords on one
  account, and cannot lock its owner out either, because the owner signs in from another address;
* per email alone (larger): guessing spread over many addresses is bounded too;
* per client address alone: one address cannot try many accounts.

An attempt counts as a failure from the moment it is let through (`reserve`), before the database
lookup and the argon2 work: concurrent attempts are counted as they arrive, so a burst of 40 at once
for one email and address has at most the ceiling's worth verified and the rest refused. When the
outcome is known the reservation becomes a failure stamped at that time, is freed by a success, or
is released when the attempt ended otherwise (database down, server busy). A refused attempt is not
a failure (its password is never checked, so no argon2 work is spent on it either): once the
failures stop, the oldest leave the window and sign-in opens again by itself, after `window`
seconds at most. Nothing locks an account for ever.

The argon2 work itself goes through `PasswordGate`: a few verifications at once (about one per
core) in a thread pool of their own, a bounded number waiting, and beyond that the answer is
SERVICE_UNAVAILABLE with `retryAfter` at once, never a stall.

Why in memory, not in the database: a check costs no query and no write, so a flood of attempts
costs the database nothing; the price is that each server process counts for itself, so with N
processes behind a balancer a guesser gets up to N times the ceilings (still bounded) and a restart
forgets the counts. The number of keys kept is bounded, so a flood of made-up emails cannot grow
memory without end.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter

from server.auth import verify_password
from server.errors import RateLimited, RetryLater
from server.settings import Limits

RATE_LIMITED_MESSAGE = "too many sign-in attempts; try again later"
BUSY_MESSAGE = "the server is busy checking other sign-ins; try again in a moment"
BUSY_RETRY_AFTER_SECONDS = 1
# Keys beyond this are evicted oldest first (after expired ones): memory stays bounded.
MAX_KEYS = 100_000
# Longer emails are cut for the key: nothing real is longer (RFC 5321 allows 254).
_MAX_KEY_TEXT = 320


# Here rather than in server/metrics.py so that the gate counts what it runs; loaded with the app,
# after `serve` has chosen prometheus_client's storage, like server/metrics.py.
PASSWORD_VERIFICATIONS = Counter(
    "crm_password_verifications",
    "argon2id password verifications run by sign-ins (refused and busy attempts run none).",
)
SIGN_INS_BUSY = Counter(
    "crm_sign_ins_busy",
    "Sign-ins answered SERVICE_UNAVAILABLE because the password hashing queue was full.",
)


class SignInBusy(RetryLater):
    """Every password slot is taken and the wait queue is full; `retry_after` whole seconds."""

    code = "SERVICE_UNAVAILABLE"


class PasswordGate:
    """argon2id verifications, `concurrency` at a time in threads of their own, `queue` waiting.

    Each verification holds 64 MiB and a core for tens of milliseconds: unbounded, a burst of
    sign-ins would take the process's memory and every core. Beyond the queue an attempt is
    refused at once (SignInBusy) rather than left waiting behind all the others.
    """

    def __init__(self, *, concurrency: int, queue: int) -> None:
        self._concurrency = concurrency
        self._queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0
        self._executor: ThreadPoolExecutor | None = None  # made on first use: no idle threads

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if self._slots.locked() and self._waiting >= self._queue:
            SIGN_INS_BUSY.inc()
            raise SignInBusy(BUSY_MESSAGE, retry_after=BUSY_RETRY_AFTER_SECONDS)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._threads(), _counted_verify, password_hash, password
            )
        except BaseException:
            self._slots.release()
            raise
        # The slot is freed when the thread is done, not when the caller stops waiting: a request
        # cancelled mid-hash must not let another hash start beside the one still running.
        future.add_done_callback(lambda _done: self._slots.release())
        return await asyncio.shield(future)

    def _threads(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._concurrency, thread_name_prefix="password"
            )
        return self._executor


def _counted_verify(password_hash: str | None, password: str) -> bool:
    PASSWORD_VERIFICATIONS.inc()
    return verify_password(password_hash, password)


class Reservation:
    """One attempt let through, counted as a failure until its outcome is known."""

    def __init__(self, throttle: LoginThrottle, email: str, address: str, stamp: float) -> None:
        self._throttle = throttle
        self._email = email
        self._address = address
        self._stamp = stamp
        self._open = True

    def failed(self) -> None:
        """Wrong password or unknown email: the failure stays, stamped now."""
        if self._close():
            self._throttle.take_back(self._email, self._address, self._stamp)
            self._throttle.failed(self._email, self._address)

    def succeeded(self) -> None:
        if self._close():
            self._throttle.take_back(self._email, self._address, self._stamp)
            self._throttle.succeeded(self._email, self._address)

    def release(self) -> None:
        """The attempt ended without an answer on the password (database down, server busy)."""
        if self._close():
            self._throttle.take_back(self._email, self._address, self._stamp)

    def _close(self) -> bool:
        was_open, self._open = self._open, False
        return was_open


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
        passwords: PasswordGate | None = None,
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
        if passwords is None:
            defaults = Limits()
            passwords = PasswordGate(
                concurrency=defaults.login_hash_concurrency, queue=defaults.login_hash_queue
            )
        self.passwords = passwords

    @classmethod
    def from_limits(cls, limits: Limits) -> LoginThrottle:
        return cls(
            window_seconds=limits.login_window_seconds,
            max_per_email_and_address=limits.login_max_failures_per_email_and_address,
            max_per_email=limits.login_max_failures_per_email,
            max_per_address=limits.login_max_failures_per_address,
            passwords=PasswordGate(
                concurrency=limits.login_hash_concurrency, queue=limits.login_hash_queue
            ),
        )

    def reserve(self, email: str, address: str) -> Reservation:
        """`check`, then count this attempt as a failure at once, before any password work.

        Check and count happen with no await between them, so concurrent attempts on one event
        loop are counted in arrival order: the ceiling's worth get through, the rest are refused.
        """
        self.check(email, address)
        stamp = self._clock()
        self._record(email, address, stamp)
        return Reservation(self, email, address, stamp)

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
        self._record(email, address, self._clock())

    def _record(self, email: str, address: str, now: float) -> None:
        for _kind, key in self._keys(email, address):
            times = self._failures.pop(key, None)
            if times is None:
                times = deque()
            self._expire(times, now)
            times.append(now)
            self._failures[key] = times  # re-inserted: the dict's order is last-failure order
        if len(self._failures) > self._max_keys:
            self._shrink(now)

    def take_back(self, email: str, address: str, stamp: float) -> None:
        """Take back one count made at `stamp` (equal stamps are interchangeable)."""
        for _kind, key in self._keys(email, address):
            times = self._failures.get(key)
            if times is None:
                continue  # expired, evicted, or cleared by a success meanwhile
            try:
                times.remove(stamp)
            except ValueError:
                continue
            if not times:
                del self._failures[key]

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
