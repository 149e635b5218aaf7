"""Exact money: catalog prices, the cost tracker under threads, budgets."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

import llmroute
from llmroute.catalog import default_catalog


@pytest.mark.parametrize("model, prompt, completion, expected, listed", [
    ("claude-opus-4.6", 500_000_000, 1_000_000_000, Decimal(45_000), Decimal(187_500)),
    ("gpt-5.4", 500_000_000, 1_000_000_000, Decimal(37_500), Decimal(150_000)),
    ("gpt-5.4-turbo", 50_000_000, 100_000_000, Decimal(3_750), Decimal(15_000)),
    ("claude-opus-4.6", 5_000_000_000, 10_000_000_000, Decimal(450_000), Decimal(1_875_000)),
    ("gemini-2.5-flash", 1_000_000, 1_000_000, Decimal("2.80"), None),
])
def test_worked_figures_of_the_comparison(model, prompt, completion, expected, listed):
    spec = default_catalog().spec(model)
    assert spec.cost(prompt, completion) == expected
    assert spec.list_cost(prompt, completion) == listed


def test_default_catalog_has_the_six_models_with_windows():
    catalog = default_catalog()
    assert set(catalog.names()) == {"claude-opus-4.6", "gpt-5.4", "claude-sonnet-4.5", "gpt-4.1",
                                    "gemini-2.5-flash", "deepseek-v3.2"}
    assert catalog.spec("claude-opus-4.6").context_window == 256_000
    assert catalog.spec("gemini-2.5-flash").context_window == 1_000_000
    assert catalog.get("GPT-5.4-TURBO").name == "gpt-5.4"
    assert isinstance(catalog.spec("deepseek-v3.2").input_usd_per_mtok, Decimal)


def test_catalog_file_extends_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "cat.json"
    path.write_text(json.dumps({"models": [
        {"name": "gpt-5.4", "input_usd_per_mtok": 1.1, "output_usd_per_mtok": 2.2,
         "context_window": 200000},
        {"name": "local-llama", "input_usd_per_mtok": 0, "output_usd_per_mtok": 0}]}))
    monkeypatch.setenv("LLMROUTE_CATALOG", str(path))
    catalog = llmroute.Catalog.default()
    assert catalog.spec("gpt-5.4").input_usd_per_mtok == Decimal("1.1")
    assert catalog.spec("local-llama").cost(10, 10) == 0
    assert "claude-opus-4.6" in catalog


@pytest.mark.parametrize("entry", [{"name": "x", "input_usd_per_mtok": -1},
                                   {"name": "x", "contxt_window": 5}, {"context_window": 5}])
def test_catalog_refuses_bad_entries(tmp_path, entry):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(ValueError):
        llmroute.Catalog.from_file(path)


def test_tracker_is_exact_from_32_threads():
    tracker = llmroute.CostTracker()
    per_thread = 200_000 // 32  # enough adds per thread to interleave; more only adds time
    costs = [Decimal("0.000123457") * (i % 97 + 1) for i in range(per_thread)]

    def work():
        for cost in costs:
            tracker.add("m", prompt_tokens=1, completion_tokens=2, cost_usd=cost)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = tracker.snapshot()
    assert snap.total_cost_usd == sum(costs) * 32
    assert snap.by_model["m"].requests == per_thread * 32
    assert snap.by_model["m"].completion_tokens == 2 * per_thread * 32


def test_tracker_snapshot_is_immutable():
    tracker = llmroute.CostTracker()
    tracker.add("m", cost_usd=Decimal("1"))
    snap = tracker.snapshot()
    tracker.add("m", cost_usd=Decimal("1"))
    assert snap.total_cost_usd == 1
    with pytest.raises(Exception):
        snap.by_model["m"].requests = 5


def test_budget_refuses_a_call_that_could_overspend():
    budget = llmroute.Budget("1.00")
    hold = budget.reserve(Decimal("0.60"))
    with pytest.raises(llmroute.BudgetExceededError):
        budget.reserve(Decimal("0.50"))
    hold.commit(Decimal("0.10"))
    budget.reserve(Decimal("0.50")).release()
    assert budget.spent_usd == Decimal("0.10")
    with pytest.raises(llmroute.BudgetExceededError):
        budget.reserve(None)  # an unpriced model counts as over any budget


def test_budget_rolls_over_each_day():
    now = [datetime(2026, 12, 2, 23, 0, tzinfo=timezone.utc)]
    budget = llmroute.Budget(1, period="day", now=lambda: now[0])
    budget.reserve(1).commit(Decimal(1))
    with pytest.raises(llmroute.BudgetExceededError):
        budget.reserve(Decimal("0.01"))
    now[0] += timedelta(hours=2)
    assert budget.remaining_usd == 1


@pytest.mark.parametrize("args", [(-1,), (0.5,), ("1", "week")])
def test_budget_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        llmroute.Budget(*args)


def test_budget_is_consistent_under_threads():
    budget = llmroute.Budget(100)
    granted = []

    def work():
        for _ in range(50):
            try:
                hold = budget.reserve(Decimal(1))
            except llmroute.BudgetExceededError:
                continue
            granted.append(1)
            hold.commit(Decimal(1))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 100 and budget.spent_usd == 100
