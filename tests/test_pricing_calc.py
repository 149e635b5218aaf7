"""The cost calculator: the comparison's worked figures, token-count parsing, the ``cost``
command (single model, --compare, --per year, --from-ledger) and its exit codes."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

import llmroute
from llmroute.catalog import Catalog, ModelSpec
from llmroute.cli import main
from llmroute.ledger import Ledger, LedgerRow
from llmroute.pricing_calc import compare_costs, estimate_cost, parse_token_count


@pytest.mark.parametrize("model, tokens_in, tokens_out, catalog, listed", [
    ("claude-opus-4.6", 500_000_000, 1_000_000_000, "45000", "187500"),
    ("gpt-5.4", 500_000_000, 1_000_000_000, "37500", "150000"),
    ("claude-opus-4.6", 50_000_000, 100_000_000, "4500", "18750"),
    ("gpt-5.4", 5_000_000_000, 10_000_000_000, "375000", "1500000"),
])
def test_reproduces_the_comparisons_worked_figures(model, tokens_in, tokens_out, catalog, listed):
    est = llmroute.estimate_cost(model, tokens_in, tokens_out)
    assert est.cost_usd == Decimal(catalog) and est.list_cost_usd == Decimal(listed)
    assert est.saving_usd == Decimal(listed) - Decimal(catalog)


def test_uses_the_catalogs_cost_function_including_cached_tokens():
    spec = ModelSpec("m", input_usd_per_mtok=Decimal("2"), output_usd_per_mtok=Decimal("8"),
                     cached_input_usd_per_mtok=Decimal("0.5"))
    est = estimate_cost("m", 1_000_000, 10, cached_tokens=400_000, catalog=Catalog([spec]))
    assert est.cost_usd == spec.cost(1_000_000, 10, 400_000) == Decimal("1.40008")
    assert est.list_cost_usd is None and est.saving_rate is None


def test_compare_is_cheapest_first_with_unpriced_last():
    catalog = Catalog([ModelSpec("free"), ModelSpec("a", input_usd_per_mtok=Decimal(3),
                                                    output_usd_per_mtok=Decimal(3)),
                       ModelSpec("b", input_usd_per_mtok=Decimal(1),
                                 output_usd_per_mtok=Decimal(1))])
    assert [e.model for e in compare_costs(10, 10, catalog=catalog)] == ["b", "a", "free"]
    assert [e.model for e in llmroute.compare_costs(1, 1)][0] == "deepseek-v3.2"


@pytest.mark.parametrize("bad, message", [
    (("nope", 1, 1), "not in the catalog"),
    (("gpt-5.4", -1, 1), "prompt_tokens"),
    (("gpt-5.4", 1, True), "completion_tokens"),
    (("gpt-5.4", 1.5, 1), "prompt_tokens"),
    (("gpt-5.4", 10, 1, 11), "cached_tokens"),
])
def test_bad_arguments_are_value_errors_naming_them(bad, message):
    with pytest.raises(ValueError, match=message):
        estimate_cost(*bad)


@pytest.mark.parametrize("text, tokens", [
    ("500M", 500_000_000), ("1.5B", 1_500_000_000), ("20k", 20_000), ("20K", 20_000),
    ("250000", 250_000), ("1b", 10 ** 9), ("2.5m", 2_500_000), ("1_000", 1000), ("0", 0),
])
def test_token_counts(text, tokens):
    assert parse_token_count(text) == tokens


@pytest.mark.parametrize("text", ["1.0005k", "0.5", "-5M", "12q", "lots", "", "nan", "1e3x"])
def test_token_counts_that_are_not_whole_numbers_are_refused(text):
    with pytest.raises(ValueError):
        parse_token_count(text)


def test_cost_command_prints_the_table_the_comparison_draws_by_hand(capsys):
    assert main(["cost", "--model", "claude-opus-4.6", "--input-tokens", "500M",
                 "--output-tokens", "1B"]) == 0
    out = capsys.readouterr().out
    assert "catalog price          $45,000.00        $540,000.00" in out
    assert "list price            $187,500.00      $2,250,000.00" in out
    assert "saving                $142,500.00      $1,710,000.00" in out
    assert "saving rate                 76.0%" in out


def test_cost_per_year_and_compare_json(capsys):
    assert main(["cost", "--model", "gpt-5.4", "--input-tokens", "6B", "--output-tokens",
                 "12B", "--per", "year", "--compare", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert Decimal(data["model"]["cost_usd_per_month"]) == 37_500
    assert Decimal(data["model"]["list_cost_usd_per_year"]) == 1_800_000
    assert [m["model"] for m in data["compare"]][0] == "deepseek-v3.2"
    assert len(data["compare"]) == 6


def test_cost_from_a_ledger_period(tmp_path, capsys):
    path = str(tmp_path / "l.db")
    with Ledger(path) as ledger:
        ledger.record(LedgerRow(1_764_547_200, "claude-opus-4.6", prompt_tokens=1_000_000,
                                completion_tokens=500_000, cost_usd=Decimal(36)))
        ledger.record(LedgerRow(1_761_955_200, "gpt-5.4", prompt_tokens=7, cost_usd=Decimal(1)))
    assert main(["cost", "--model", "deepseek-v3.2", "--from-ledger", path, "--since",
                 "2025-12-01", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recorded_spend_usd"] == "36"
    assert Decimal(data["model"]["cost_usd_per_month"]) == estimate_cost(
        "deepseek-v3.2", 1_000_000, 500_000).cost_usd


@pytest.mark.parametrize("args, message", [
    (["--model", "gpt-5.4", "--input-tokens", "1.5", "--output-tokens", "1"], "whole number"),
    (["--model", "gpt-5.4", "--input-tokens", "5X", "--output-tokens", "1"], "suffix"),
    (["--model", "gpt-5.4", "--input-tokens", "1M"], "--output-tokens"),
    (["--model", "nope", "--input-tokens", "1M", "--output-tokens", "1M"], "not in the catalog"),
    (["--input-tokens", "1M", "--output-tokens", "1M"], "--model"),
    (["--model", "gpt-5.4", "--input-tokens", "1M", "--output-tokens", "1M", "--per", "week"],
     "invalid choice"),
    (["--model", "gpt-5.4", "--from-ledger", "/nonexistent.db"], "does not exist"),
    (["--model", "gpt-5.4", "--input-tokens", "1", "--output-tokens", "1", "--since", "2025-01-01"],
     "--from-ledger"),
])
def test_cost_bad_input_exits_2(capsys, args, message):
    assert main(["cost"] + args) == 2
    assert message in capsys.readouterr().err


def _cost_cli(*argv):
    """``python -m llmroute cost ...`` in a child process: what a user's terminal shows."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "llmroute", "cost", *argv], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(root)), timeout=30)


@pytest.mark.parametrize("count", ["1e30", "12345678901234567890123456789k", "1e100000"])
def test_cost_with_a_huge_or_exponent_token_count_is_one_line_and_exit_2(count):
    done = _cost_cli("--model", "claude-opus-4.6", "--input-tokens", count,
                     "--output-tokens", "1")
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr[-300:])
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["1e3", "1E3k", "-0", "+5", "inf", "Infinity", "1.5e2"])
def test_token_counts_in_exponent_or_signed_notation_are_refused(text):
    with pytest.raises(ValueError):
        parse_token_count(text)


def test_a_token_count_that_is_not_whole_is_refused_even_past_28_digits():
    # 1.0000000000000000000000000001k is 1000.0000000000000000000000001 tokens: not whole.
    with pytest.raises(ValueError, match="whole"):
        parse_token_count("1.0000000000000000000000000001k")


def test_a_token_count_is_parsed_exactly_not_rounded_to_28_digits():
    assert parse_token_count("12345678901234567890123456789k") == \
        12345678901234567890123456789000


def test_estimates_refuse_more_than_10_to_the_18_tokens_without_printing_the_number():
    from llmroute.pricing_calc import MAX_TOKENS

    assert estimate_cost("gpt-5.4", MAX_TOKENS, 0).prompt_tokens == MAX_TOKENS
    with pytest.raises(ValueError, match="at most 10\\^18") as caught:
        estimate_cost("gpt-5.4", 10 ** 5000, 1)  # past Python's 4300-digit int-to-text limit
    assert len(str(caught.value)) < 100


def test_cost_since_or_until_without_from_ledger_is_refused_even_when_empty(capsys):
    for option in ("--since", "--until"):
        assert main(["cost", "--model", "gpt-5.4", "--input-tokens", "1", "--output-tokens", "1",
                     option, ""]) == 2
        assert "--from-ledger" in capsys.readouterr().err
