"""Sign-in throttling: guessing is bounded per email+address, per email and per address, the
answer says RATE_LIMITED and when to retry, and nobody is locked out for longer than the window.

The server here runs with a 6 s window (tests/reliability/conftest.py THROTTLE_ENV). Client
addresses come from X-Forwarded-For, which uvicorn trusts from 127.0.0.1 only (its default
--forwarded-allow-ips), as it would from a proxy in front of the server.
"""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow

from server.errors import RateLimited
from server.throttle import LoginThrottle
from tests.reliability.conftest import THROTTLE_ENV, add_user, codes, gql

LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }"
WINDOW = 6.0


def login(http: httpx.Client, email: str, password: str, address: str) -> httpx.Response:
    return gql(http, LOGIN, {"e": email, "p": password}, headers={"X-Forwarded-For": address})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_guessing_one_account_from_one_address_is_stopped_but_its_owner_gets_in_elsewhere(
    http: httpx.Client, committed: psycopg.Connection[DictRow]
) -> None:
    email = f"{unique('owner')}@example.com"
    password = add_user(committed, email)
    attacker, owner = unique("10.1"), unique("10.2")
    allowed = int(THROTTLE_ENV["LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS"])

    failures = [codes(login(http, email, "wrong password!", attacker)) for _ in range(allowed)]
    refused = login(http, email, password, attacker)  # even the right password waits
    owner_answer = login(http, email, password, owner)

    assert failures == [["UNAUTHENTICATED"]] * allowed
    assert codes(refused) == ["RATE_LIMITED"]
    error = refused.json()["errors"][0]
    assert 1 <= error["extensions"]["retryAfter"] <= WINDOW
    assert "too many" in error["message"]
    assert owner_answer.json()["data"]["login"]["token"]


def test_the_throttle_lets_go_by_itself_once_the_window_has_passed(
    http: httpx.Client, committed: psycopg.Connection[DictRow]
) -> None:
    email = f"{unique('patient')}@example.com"
    password = add_user(committed, email)
    address = unique("10.3")
    allowed = int(THROTTLE_ENV["LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS"])
    for _ in range(allowed):
        login(http, email, "wrong password!", address)
    retry_after = login(http, email, password, address).json()["errors"][0]["extensions"][
        "retryAfter"
    ]

    time.sleep(retry_after + 0.2)
    answer = login(http, email, password, address)

    assert answer.json()["data"]["login"]["token"]


def test_one_address_trying_many_accounts_is_stopped(http: httpx.Client) -> None:
    address = unique("10.4")
    allowed = int(THROTTLE_ENV["LOGIN_MAX_FAILURES_PER_ADDRESS"])

    answers = [
        codes(login(http, f"{unique('nobody')}@example.com", "guess", address))
        for _ in range(allowed + 1)
    ]

    assert answers[:allowed] == [["UNAUTHENTICATED"]] * allowed
    assert answers[allowed] == ["RATE_LIMITED"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **overrides: int) -> LoginThrottle:
    options = {
        "max_per_email_and_address": 3,
        "max_per_email": 10,
        "max_per_address": 20,
    } | overrides
    return LoginThrottle(window_seconds=60, clock=clock, **options)


def test_guessing_one_account_from_many_addresses_is_bounded_per_email() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for index in range(10):  # ten addresses, one failure each
        limiter.failed("ada@example.com", f"10.0.0.{index}")

    with pytest.raises(RateLimited) as refused:
        limiter.check("ADA@example.com ", "10.9.9.9")
    assert refused.value.retry_after == 60
    limiter.check("bob@example.com", "10.9.9.9")  # other accounts are untouched


def test_refused_attempts_do_not_count_so_the_lock_ends_one_window_after_the_last_failure() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(3):
        limiter.failed("ada@example.com", "10.0.0.1")
        clock.now += 10
    for _ in range(100):  # hammering while refused changes nothing
        with pytest.raises(RateLimited):
            limiter.check("ada@example.com", "10.0.0.1")
    clock.now += 40.5  # the first failure (at 1000) leaves the window at 1060

    limiter.check("ada@example.com", "10.0.0.1")


def test_a_flood_of_made_up_emails_keeps_memory_bounded() -> None:
    clock = Clock()
    limiter = LoginThrottle(
        window_seconds=60,
        max_per_email_and_address=3,
        max_per_email=10,
        max_per_address=10**9,
        max_keys=1000,
        clock=clock,
    )
    for index in range(5000):
        limiter.failed(f"user{index}@example.com", "10.0.0.1")

    assert limiter.keys <= 1000
