"""Cooldowns shared on Redis: a model failing for one process is skipped by all."""
from __future__ import annotations

import time


from _redis import free_port
from llmroute import Budget, Client, CooldownPolicy, RateLimiter, Router
from llmroute.backends.redis_health import RedisHealthBoard
from llmroute.health import HealthBoard

from test_redis_limiter import _counting_client

POLICY = CooldownPolicy(failures=2, window=10, cooldown=0.3)


def _board(url, namespace):
    return HealthBoard(POLICY, backend=url, namespace=namespace, refresh=0)


def test_failures_anywhere_cool_the_model_for_everyone_until_one_probe_succeeds(
        redis_url, namespace):
    a, b = _board(redis_url, namespace), _board(redis_url, namespace)
    assert isinstance(a, RedisHealthBoard)
    a.failed("m", "HTTP 503")
    b.failed("m", "HTTP 503")  # two failures in the fleet: open for all
    reason, probe = a.acquire("m")
    assert "every process" in reason and "HTTP 503" in reason and not probe
    assert b.health(["m"])["m"].state == "cooling"
    time.sleep(0.35)
    assert b.acquire("m") == (None, True)  # one process probes
    assert a.acquire("m") == ("cooldown over; another process is probing it", False)
    b.succeeded("m", 12.0, probe=True)
    assert a.acquire("m") == (None, False)
    assert a.acquire("other") == (None, False)


def test_a_failed_probe_opens_the_circuit_again(redis_url, namespace):
    a, b = _board(redis_url, namespace), _board(redis_url, namespace)
    a.failed("m", "timeout")
    a.failed("m", "timeout")
    time.sleep(0.35)
    assert a.acquire("m") == (None, True)
    a.failed("m", "timeout again", probe=True)
    assert "timeout again" in b.acquire("m")[0]


def test_health_falls_back_to_this_process_when_redis_is_away(namespace, redis_package):
    board = HealthBoard(POLICY, backend="redis://127.0.0.1:%d/0" % free_port(),
                        namespace=namespace)
    board.failed("m", "HTTP 500")
    board.failed("m", "HTTP 500")
    assert "cooling" in board.acquire("m")[0]  # the local circuit still works
    assert not board.backend_up


def test_a_routed_call_costs_at_most_four_round_trips(redis_url, namespace, gw):
    counting = _counting_client(redis_url)
    limiter = RateLimiter(rpm=6000, tpm=10 ** 6, max_concurrent=8, backend=counting,
                          namespace=namespace, expected_processes=4)
    client = Client(base_url=gw.base_url, api_key="sk-test-route", limiter=limiter)
    frozen = lambda: 1000.0  # noqa: E731 - the health refresh is due only once
    router = Router(client, budget=Budget("10", backend=counting, namespace=namespace),
                    health_backend=counting, namespace=namespace, clock=frozen)
    router.complete("Write a haiku about rain", task="general")  # loads the scripts
    before = type(counting).commands
    for _ in range(5):
        router.complete("Write a haiku about rain", task="general")
    assert type(counting).commands - before <= 4 * 5


def test_a_wrong_type_at_the_health_key_falls_back_to_local_state(
        redis_url, redis_client, namespace):
    board = RedisHealthBoard(backend=redis_url, namespace=namespace)
    redis_client.set(board.redis_keys("gpt-5.4")[0], "not a hash")  # WRONGTYPE for HGETALL
    assert board.check("gpt-5.4") is None
