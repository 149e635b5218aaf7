"""``Budget(ledger=...)``: seeded from the ledger's period total, refreshed on schedule, rolled
over at the period's end, degrading to local totals when the ledger fails; and the overshoot
bound the README states, shown with four processes sharing one ledger."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from llmroute.costs import Budget
from llmroute.errors import BudgetExceededError
from llmroute.ledger import Ledger, LedgerRow


def _at(*ymd_hms):
    return datetime(*ymd_hms, tzinfo=timezone.utc)


def _epoch(*ymd_hms):
    return _at(*ymd_hms).timestamp()


@pytest.fixture
def ledger(tmp_path):
    with Ledger(str(tmp_path / "budget.db")) as led:
        yield led


def test_a_cron_job_starts_from_the_months_spending_in_the_ledger(ledger, clock):
    ledger.record(LedgerRow(_epoch(2026, 10, 31, 23, 59), "m", cost_usd=Decimal("50")))  # last month
    ledger.record(LedgerRow(_epoch(2026, 11, 1), "m", cost_usd=Decimal("6")))
    ledger.record(LedgerRow(_epoch(2026, 11, 20, 8), "m", cost_usd=Decimal("3.5")))
    now = _at(2026, 11, 21, 9)
    budget = Budget("10", period="month", ledger=ledger, now=lambda: now, clock=clock)
    assert budget.spent_usd == Decimal("9.5")
    budget.reserve(Decimal("0.5")).commit(Decimal("0.25"))
    with pytest.raises(BudgetExceededError):
        budget.reserve(Decimal("0.5"))
    day = Budget("10", period="day", ledger=ledger, now=lambda: _at(2026, 11, 20, 23), clock=clock)
    assert day.spent_usd == Decimal("3.5")


def test_refreshes_every_refresh_seconds_and_counts_own_rows_once(ledger, clock):
    now = _at(2026, 11, 21, 9)
    budget = Budget("100", period="month", ledger=ledger, now=lambda: now,
                    refresh_seconds=30, clock=clock)
    hold = budget.reserve(Decimal("2"))
    hold.commit(Decimal("1.5"))
    ledger.record(LedgerRow(now.timestamp(), "m", cost_usd=Decimal("1.5")))  # our own row
    ledger.record(LedgerRow(now.timestamp(), "m", cost_usd=Decimal("4")))    # another process
    ledger.flush()
    budget.reserve(Decimal("1")).release()
    assert budget.spent_usd == Decimal("1.5")  # not refreshed yet: the other row is unseen
    clock.advance(30)
    budget.reserve(Decimal("1")).release()
    assert budget.spent_usd == Decimal("5.5")  # own 1.5 counted once, plus the other 4


def test_a_new_period_starts_from_the_ledger_again(ledger, clock):
    moments = [_at(2026, 11, 30, 23)]
    budget = Budget("10", period="month", ledger=ledger, now=lambda: moments[0],
                    refresh_seconds=3600, clock=clock)
    ledger.record(LedgerRow(_epoch(2026, 12, 1, 0, 5), "m", cost_usd=Decimal("7")))
    budget.reserve(Decimal("9")).commit(Decimal("9"))
    moments[0] = _at(2026, 12, 1, 1)
    assert budget.remaining_usd == Decimal("10")  # rolled over; not yet re-read
    budget.reserve(Decimal("1")).release()        # the roll makes the re-read due at once
    assert budget.spent_usd == Decimal("7")


def test_a_failing_ledger_degrades_to_local_totals_and_logs_once(ledger, clock, caplog):
    budget = Budget("10", period="day", ledger=ledger, refresh_seconds=0, clock=clock)
    ledger.close()

    def broken(**kw):
        raise OSError("disk gone")

    ledger.spent_usd = broken
    caplog.set_level(logging.WARNING, logger="llmroute.costs")
    for _ in range(3):
        budget.reserve(Decimal("1")).commit(Decimal("1"))
    assert budget.spent_usd == Decimal("3")
    assert len([r for r in caplog.records if "cannot read the ledger" in r.getMessage()]) == 1


def test_bad_ledger_arguments(ledger):
    with pytest.raises(ValueError, match="refresh_seconds"):
        Budget("1", period="day", ledger=ledger, refresh_seconds=-1)
    with pytest.raises(ValueError, match="refresh_seconds"):
        Budget("1", period="day", ledger=ledger, refresh_seconds=True)
    with pytest.raises(ValueError, match="ledger must be"):
        Budget("1", period="day", ledger="budget.db")


def test_overshoot_is_at_most_one_worst_case_per_other_process(tmp_path):
    """Four processes (each its own Ledger and Budget on one file, refresh before every call)
    start calls at the same moment: each sees the others' flushed rows but not their holds, so
    the month can overshoot the limit, by at most one worst case per other process."""
    path = str(tmp_path / "fleet.db")
    limit, worst, processes = Decimal("10"), Decimal("1"), 4
    ledgers = [Ledger(path) for _ in range(processes)]
    budgets = [Budget(limit, period="month", ledger=led, refresh_seconds=0) for led in ledgers]
    for _ in range(10):
        holds = []
        for budget in budgets:  # every process checks before any of this round is billed
            try:
                holds.append(budget.reserve(worst))
            except BudgetExceededError:
                holds.append(None)
        if not any(holds):
            break
        for hold, led in zip(holds, ledgers):
            if hold is not None:
                hold.commit(worst)
                led.record(LedgerRow(time.time(), "m", cost_usd=worst))
        for led in ledgers:
            led.flush()
    spent = ledgers[0].spent_usd()
    for led in ledgers:
        led.close()
    assert limit < spent <= limit + (processes - 1) * worst  # 12: over by 2, within the bound


def test_with_redis_the_ledger_seeds_the_fleet_total_once_per_period(ledger, redis_url,
                                                                     namespace):
    from llmroute.backends.redis_budget import RedisBudget

    now = _at(2026, 11, 21, 9)
    ledger.record(LedgerRow(_epoch(2026, 11, 2), "m", cost_usd=Decimal("7.25")))  # before Redis
    ledger.record(LedgerRow(_epoch(2026, 10, 30), "m", cost_usd=Decimal("99")))   # last month
    ledger.flush()
    first = Budget("10", period="month", backend=redis_url, namespace=namespace,
                   ledger=ledger, now=lambda: now)
    second = Budget("10", period="month", backend=redis_url, namespace=namespace,
                    ledger=ledger, now=lambda: now)  # another process: must not seed again
    assert isinstance(first, RedisBudget)
    assert first.spent_usd == second.spent_usd == Decimal("7.25")
    first.reserve(Decimal("2")).commit(Decimal("2"))
    with pytest.raises(BudgetExceededError):
        second.reserve(Decimal("1"))
