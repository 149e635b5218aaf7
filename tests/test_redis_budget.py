"""Budget(backend=redis): one spending limit for the fleet, exact money, failing closed."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from _redis import free_port, run_fleet
from llmroute import Budget, BudgetExceededError
from llmroute.backends.redis_budget import RedisBudget
from llmroute.catalog import Catalog
from llmroute.costs import MONEY_UNIT


def test_backend_makes_the_fleet_budget_and_money_stays_exact(redis_url, namespace):
    budget = Budget("1", backend=redis_url, namespace=namespace)
    assert isinstance(budget, RedisBudget)
    other = Budget("1", backend=redis_url, namespace=namespace)  # another process
    hold = budget.reserve(Decimal("0.3"))
    assert other.remaining_usd == Decimal("0.7")
    hold.commit(Decimal("0.000000000001") * 7)
    hold.commit(Decimal("0.5"))  # a second commit does nothing
    assert other.spent_usd == MONEY_UNIT * 7
    other.charge(Decimal("0.25"))
    assert budget.spent_usd == Decimal("0.250000000007")
    with pytest.raises(ValueError, match="float"):
        budget.reserve(0.1)


def test_the_fleet_is_refused_past_the_limit(redis_url, namespace):
    first = Budget("0.10", backend=redis_url, namespace=namespace)
    second = Budget("0.10", backend=redis_url, namespace=namespace)
    held = first.reserve(Decimal("0.06"))
    with pytest.raises(BudgetExceededError, match="fleet budget") as info:
        second.reserve(Decimal("0.05"))
    assert info.value.spent_usd == Decimal("0.06")
    held.release()
    second.reserve(Decimal("0.05")).commit(Decimal("0.04"))
    assert first.remaining_usd == Decimal("0.06")


def test_a_dead_processes_hold_expires(redis_url, namespace):
    budget = Budget("1", backend=redis_url, namespace=namespace, hold_seconds=0.2)
    budget.reserve(Decimal("0.9"))  # never committed: its process "died"
    time.sleep(0.3)
    assert budget.remaining_usd == Decimal("1")
    budget.reserve(Decimal("0.9")).release()


def test_periods_have_their_own_keys_with_a_ttl(redis_url, redis_client, namespace):
    now = [datetime(2026, 12, 3, 23, 59, tzinfo=timezone.utc)]
    budget = Budget("1", "day", backend=redis_url, namespace=namespace, now=lambda: now[0])
    budget.reserve(Decimal("0.5")).commit(Decimal("0.5"))
    key = budget.redis_keys()[0]
    assert key.endswith(":2026-12-03") and 0 < redis_client.pttl(key) <= 2 * 86400 * 1000
    now[0] = datetime(2026, 12, 4, 0, 1, tzinfo=timezone.utc)
    assert budget.remaining_usd == Decimal("1")


def test_an_unreachable_redis_fails_closed_and_says_so(namespace, redis_package):
    budget = Budget("1", backend="redis://127.0.0.1:%d/0" % free_port(), namespace=namespace)
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(BudgetExceededError, match="failing closed"):
            budget.reserve(Decimal("0.01"))
    assert time.monotonic() - started < 0.6


def test_four_processes_stop_at_the_shared_limit(redis_url, namespace, gw):
    spec = Catalog.default().spec("gpt-5.4")
    worst = spec.cost(200, 16)  # more than the fake's prompt estimate and 16 output tokens
    limit = Decimal("0.02")
    job = {"mode": "budget", "url": redis_url, "namespace": namespace, "base_url": gw.base_url,
           "limit": str(limit), "worst_case": str(worst), "model": "gpt-5.4", "max_tokens": 16,
           "threads": 3, "calls": 60, "start_at": time.monotonic() + 1.2}
    reports = run_fleet([job] * 4, timeout=30)
    billed = [Decimal(c) for r in reports for c in r["billed"]]
    assert sum(r["refused"] for r in reports) == 12  # every thread was stopped by the budget
    assert limit / 2 < sum(billed) <= limit + worst
    assert Budget(limit, backend=redis_url, namespace=namespace).spent_usd == sum(billed)


def test_a_wrong_type_at_the_budget_key_fails_closed_with_a_budget_error(
        redis_url, redis_client, namespace):
    budget = Budget("10", backend=redis_url, namespace=namespace)
    redis_client.set(budget.redis_keys()[0], "not a hash")  # WRONGTYPE for the scripts
    with pytest.raises(BudgetExceededError, match="failing closed"):
        budget.reserve(Decimal("1"))
