"""Adversarial review of the ledger, the cost calculator, the Redis backends and the command
line: each test names a promise the current code breaks (it fails now and passes when fixed)."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from llmroute.cli import main as cli_main
from llmroute.cli import jsonl as jb
from llmroute.ledger import Ledger
from llmroute.ledger.chart import render_spend_chart
from llmroute.ledger.html import render_html
from llmroute.ledger.reports import daily_spend, usage_report
from llmroute.ledger.rows import LedgerRow
from llmroute.pricing_calc import parse_token_count

ROOT = Path(__file__).resolve().parents[1]


def _ledger_with(path, *models):
    ledger = Ledger(str(path))
    now = time.time()
    for i, model in enumerate(models):
        ledger.record(LedgerRow(now - 86_400 * i, model, prompt_tokens=10, completion_tokens=5,
                                cost_usd=Decimal("0.25") * (i + 1), latency_ms=12.0))
    assert ledger.close()
    return str(path)


def _cli(*argv, env=None):
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "llmroute", *argv], capture_output=True,
                          text=True, env=full_env, timeout=30)


# -- llmroute cost: token counts --------------------------------------------------------------

@pytest.mark.parametrize("count", ["1e30", "12345678901234567890123456789k", "1e100000"])
def test_cost_with_a_huge_token_count_is_one_line_exit_2_not_a_traceback(count):
    done = _cli("cost", "--model", "claude-opus-4.6", "--input-tokens", count,
                "--output-tokens", "1")
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr[-300:])
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_token_count_that_is_not_whole_is_refused_even_past_28_digits():
    # 1.0000000000000000000000000001k is 1000.0000000000000000000000001 tokens: not whole.
    with pytest.raises(ValueError):
        parse_token_count("1.0000000000000000000000000001k")


def test_a_token_count_is_parsed_exactly_not_rounded_to_28_digits():
    assert parse_token_count("12345678901234567890123456789k") == \
        12345678901234567890123456789000


def test_cost_since_without_from_ledger_is_refused_even_when_empty():
    done = _cli("cost", "--model", "gpt-5.4", "--input-tokens", "1", "--output-tokens", "1",
                "--since", "")
    assert done.returncode == 2, done.stdout[:200]


# -- llmroute usage: output ---------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--chart"], ["--format", "csv"]])
def test_usage_report_prints_on_an_ascii_stdout_with_a_non_ascii_model_name(tmp_path, extra):
    path = _ledger_with(tmp_path / "u.db", "gpt-5.4", "modèle-😀")
    done = _cli("usage", "--ledger", path, *extra, env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr[-300:]
    assert "gpt-5.4" in done.stdout


def test_the_chart_legend_fits_80_columns_with_a_200_character_model_name():
    rows = [("2026-11-01", "x" * 200, Decimal("1.50")), ("2026-11-01", "b", Decimal("1"))]
    chart = render_spend_chart(rows, blocks=False, colour=False, title="t")
    assert max(len(line) for line in chart.splitlines()) <= 80


def test_the_chart_without_colour_carries_no_escape_sequence_from_a_model_name():
    rows = [("2026-11-01", "evil\x1b[2J\x1b[31mred", Decimal("1"))]
    chart = render_spend_chart(rows, blocks=False, colour=False, title="t")
    assert "\x1b" not in chart


def test_the_html_page_svg_stays_well_formed_with_a_control_character_in_a_model_name(
        tmp_path):
    path = _ledger_with(tmp_path / "h.db", "ok-model", "bad\x1bmodel", "<script>&")
    ledger = Ledger(path, create=False)
    try:
        page = render_html(usage_report(ledger, by="model"), daily_spend(ledger), source=path)
    finally:
        ledger.close()
    assert "<script>" not in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert svgs
    for svg in svgs:
        ET.fromstring(svg)  # raises ParseError on a raw control character


# -- llmroute batch: odd inputs -------------------------------------------------------------

def test_a_line_with_the_id_key_twice_is_an_error_record_not_the_last_id_silently():
    item = jb.parse_line(1, '{"id": 1, "prompt": "a", "id": 2}')
    assert item.problem is not None


def test_a_boolean_max_tokens_in_an_input_line_never_reaches_the_gateway(tmp_path, monkeypatch):
    from llmroute.testing import FakeGateway

    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "x", "prompt": "a", "model": "gpt-5.4", "max_tokens": true}\n',
                      encoding="utf-8")
    with FakeGateway() as gw:
        monkeypatch.setenv("LLMROUTE_API_KEY", "sk-review-0123456789")
        monkeypatch.setenv("LLMROUTE_BASE_URL", gw.base_url)
        cli_main(["batch", str(source), "-o", str(tmp_path / "out.jsonl"), "--no-progress"])
        sent = [r.json.get("max_tokens") for r in gw.requests if isinstance(r.json, dict)]
    assert True not in sent, "max_tokens=true was sent to the gateway as a number"


# -- Redis backends -------------------------------------------------------------------------

def test_a_redis_password_in_the_url_query_never_appears_in_a_repr():
    pytest.importorskip("redis")
    from llmroute import RedisTokenBucket

    bucket = RedisTokenBucket("redis://127.0.0.1:1/0?password=hunter2", "k", 10, 10)
    assert "hunter2" not in repr(bucket)


def test_a_wrong_type_at_a_limiter_key_does_not_fail_a_call_with_local_fallback(
        redis_url, redis_client, namespace):
    from llmroute import RateLimiter

    limiter = RateLimiter(rpm=600, tpm=100_000, backend=redis_url, namespace=namespace,
                          expected_processes=2, on_backend_error="local")
    try:
        redis_client.set(limiter.redis_keys(None)["rq"], "not a hash")
        reservation = limiter.reserve(10)  # raises redis.ResponseError (WRONGTYPE) today
        reservation.settle(10)
    finally:
        close = getattr(limiter, "close", None)
        if close:
            close()


def test_a_fleet_budget_with_a_wrong_type_at_its_key_fails_closed_with_a_budget_error(
        redis_url, redis_client, namespace):
    from llmroute import Budget
    from llmroute.errors import BudgetExceededError

    budget = Budget("10", backend=redis_url, namespace=namespace)
    redis_client.set(budget.redis_keys()[0], "not a hash")
    with pytest.raises(BudgetExceededError):  # redis.ResponseError (WRONGTYPE) today
        budget.reserve(Decimal("1"))


def test_a_wrong_type_at_the_health_key_does_not_raise_out_of_check(
        redis_url, redis_client, namespace):
    from llmroute.backends.redis_health import RedisHealthBoard

    board = RedisHealthBoard(backend=redis_url, namespace=namespace)
    redis_client.set(board.redis_keys("gpt-5.4")[0], "not a hash")
    assert board.check("gpt-5.4") is None  # redis.ResponseError (WRONGTYPE) today


# -- secrets and dates in the usage command ---------------------------------------------------

def test_usage_never_prints_the_password_of_a_keyword_postgres_dsn(tmp_path):
    done = _cli("usage", "--ledger", "host=127.0.0.1 port=1 password=hunter2 dbname=x")
    assert done.returncode == 2
    assert "hunter2" not in done.stdout + done.stderr, done.stderr


def test_usage_json_gives_since_in_iso_8601_utc(tmp_path, capsys):
    path = _ledger_with(tmp_path / "j.db", "gpt-5.4")
    assert cli_main(["usage", "--ledger", path, "--since", "2026-11-20T00:00+05:00",
                     "--format", "json"]) == 0
    since = json.loads(capsys.readouterr().out)["since"]
    assert since in ("2026-11-19T19:00:00Z", "2026-11-19T19:00:00+00:00"), since
