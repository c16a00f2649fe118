"""Sign-in throttling: guessing is bounded per email+address, per email and per address, the
answer says RATE_LIMITED and when to retry, and nobody is locked out for longer than the window.

The server here runs with a 6 s window (tests/reliability/conftest.py THROTTLE_ENV). Client
addresses come from X-Forwarded-For, which uvicorn trusts from 127.0.0.1 only (its default
--forwarded-allow-ips), as it would from a proxy in front of the server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg.rows import DictRow

from server.auth import hash_password
from server.errors import RateLimited
from server.throttle import LoginThrottle, PasswordGate, SignInBusy
from tests.realtime.harness import ServerProcess, start_server
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


# --- Bursts: the throttle decides before any password work (issue 11, point 1) ---------------

BURST = 40
METRIC = "crm_password_verifications_total"


@pytest.fixture(scope="module")
def burst_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The default ceilings (5 per email+address), metrics on to count argon2 verifications."""
    env = {"METRICS_ENABLED": "true", "LOGIN_THROTTLE_WINDOW": "6s"}
    process = start_server(database_url, tmp_path_factory.mktemp("burst"), extra_env=env)
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture(scope="module")
def narrow_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One verification at a time, two waiting: the rest are told the server is busy."""
    env = {"METRICS_ENABLED": "true", "LOGIN_HASH_CONCURRENCY": "1", "LOGIN_HASH_QUEUE": "2"}
    process = start_server(database_url, tmp_path_factory.mktemp("narrow"), extra_env=env)
    try:
        yield process
    finally:
        process.terminate()


def verifications(server: ServerProcess) -> float | None:
    """The server's count of argon2 verifications so far (None: the counter does not exist)."""
    text = httpx.get(f"{server.url}/metrics", timeout=5.0).text
    for line in text.splitlines():
        if line.startswith(METRIC + " "):
            return float(line.split()[1])
    return None


Attempt = tuple[str, str, str]  # email, password, client address


def send_together(
    server: ServerProcess, attempts: list[Attempt]
) -> list[tuple[httpx.Response, float]]:
    """Every login at once over its own connection; each answer with its latency in seconds."""

    async def one(client: httpx.AsyncClient, attempt: Attempt) -> tuple[httpx.Response, float]:
        email, password, address = attempt
        started = time.monotonic()
        response = await client.post(
            "/graphql",
            json={"query": LOGIN, "variables": {"e": email, "p": password}},
            headers={"X-Forwarded-For": address},
        )
        return response, time.monotonic() - started

    async def all_of_them() -> list[tuple[httpx.Response, float]]:
        limits = httpx.Limits(max_connections=len(attempts) + 1)
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0, limits=limits) as client:
            return list(await asyncio.gather(*(one(client, attempt) for attempt in attempts)))

    return asyncio.run(all_of_them())


def test_a_burst_of_wrong_passwords_for_one_account_verifies_at_most_the_ceiling(
    burst_server: ServerProcess, committed: psycopg.Connection[DictRow]
) -> None:
    email = f"{unique('burst')}@example.com"
    add_user(committed, email)
    attacker = unique("10.5")
    before = verifications(burst_server)

    answers = send_together(burst_server, [(email, "wrong password!", attacker)] * BURST)

    answer_codes = [codes(response) for response, _ in answers]
    failed = answer_codes.count(["UNAUTHENTICATED"])
    refused = [response for response, _ in answers if codes(response) == ["RATE_LIMITED"]]
    assert 1 <= failed <= 5, answer_codes
    assert failed + len(refused) == BURST, answer_codes
    for response in refused:
        assert 1 <= response.json()["errors"][0]["extensions"]["retryAfter"] <= 6
    after = verifications(burst_server)
    assert before is not None
    assert after is not None
    assert after - before == failed  # a refused attempt cost no argon2 work


def test_the_owner_signs_in_from_another_address_during_a_burst(
    burst_server: ServerProcess, committed: psycopg.Connection[DictRow]
) -> None:
    email = f"{unique('besieged')}@example.com"
    password = add_user(committed, email)
    attacker, owner = unique("10.6"), unique("10.7")
    guesses: list[Attempt] = [(email, "wrong password!", attacker)] * BURST

    answers = send_together(burst_server, [*guesses[: BURST // 2], (email, password, owner)])
    answers += send_together(burst_server, guesses[BURST // 2 :])

    owner_answer = answers[BURST // 2][0]
    assert owner_answer.json()["data"]["login"]["token"]
    attacker_codes = [codes(response) for response, _ in answers if response is not owner_answer]
    assert attacker_codes.count(["UNAUTHENTICATED"]) <= 5
    assert all(code in (["UNAUTHENTICATED"], ["RATE_LIMITED"]) for code in attacker_codes)


def test_when_the_hash_queue_is_full_the_excess_is_told_the_server_is_busy_at_once(
    narrow_server: ServerProcess,
) -> None:
    before = verifications(narrow_server)

    answers = send_together(
        narrow_server,
        [(f"{unique('many')}@example.com", "guess", unique("10.8")) for _ in range(BURST)],
    )

    answer_codes = [codes(response) for response, _ in answers]
    busy = [
        (response, took) for response, took in answers if codes(response) == ["SERVICE_UNAVAILABLE"]
    ]
    checked = answer_codes.count(["UNAUTHENTICATED"])
    assert busy, answer_codes
    assert checked + len(busy) == BURST, answer_codes
    for response, _ in busy:
        error = response.json()["errors"][0]
        assert "busy" in error["message"]
        assert error["extensions"]["retryAfter"] >= 1
    after = verifications(narrow_server)
    assert before is not None
    assert after is not None
    assert after - before == checked  # the busy answers cost no argon2 work
    # Not a stall: a busy answer does not wait for the verifications ahead of it.
    slowest_checked = max(
        took for response, took in answers if codes(response) != ["SERVICE_UNAVAILABLE"]
    )
    assert min(took for _, took in busy) < slowest_checked


def test_attempts_count_as_they_arrive_and_a_success_or_a_release_gives_the_slot_back() -> None:
    clock = Clock()
    limiter = throttle(clock)
    first, second, third = (limiter.reserve("ada@example.com", "10.0.0.1") for _ in range(3))

    with pytest.raises(RateLimited):  # three in flight, none answered yet: the ceiling is reached
        limiter.reserve("ada@example.com", "10.0.0.1")
    first.release()
    fourth = limiter.reserve("ada@example.com", "10.0.0.1")
    second.failed()
    third.failed()
    fourth.succeeded()  # the owner's own typos from this address stop counting

    limiter.check("ada@example.com", "10.0.0.1")
    assert limiter.keys == 2  # the email's and the address's failures stay


def test_a_failure_is_stamped_when_its_outcome_is_known_so_the_lock_runs_from_there() -> None:
    clock = Clock()
    limiter = throttle(clock)
    attempts = [limiter.reserve("ada@example.com", "10.0.0.1") for _ in range(3)]
    clock.now += 30  # a slow verification
    for attempt in attempts:
        attempt.failed()
        attempt.failed()  # a second outcome changes nothing

    clock.now += 59
    with pytest.raises(RateLimited) as refused:
        limiter.check("ada@example.com", "10.0.0.1")
    assert refused.value.retry_after == 1
    clock.now += 1.5
    limiter.check("ada@example.com", "10.0.0.1")


async def test_the_password_gate_refuses_beyond_its_queue_and_verifies_the_rest() -> None:
    gate = PasswordGate(concurrency=1, queue=1)
    digest = hash_password("right")

    answers = await asyncio.gather(
        *(gate.verify(digest, "right") for _ in range(4)), return_exceptions=True
    )

    assert answers[:2] == [True, True]  # one running, one waiting
    assert all(isinstance(answer, SignInBusy) for answer in answers[2:])
    assert await gate.verify(digest, "wrong") is False  # the queue drained: open again
