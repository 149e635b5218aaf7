"""The ledger attached to a Client, against a real FakeGateway on loopback: one row per call
(plain, failed, each model a router tried, each repair turn, each stream), the router's task
and routed_via, tags, LLMROUTE_LEDGER, never the key, and rows equal to the CostTracker."""
from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

import llmroute
from llmroute.costs import CostTracker, units_to_usd
from llmroute.ledger import Ledger
from llmroute.retry import RetryPolicy
from llmroute.testing import Reply

KEY = "sk-ledger-test-key-9f8e7d"
MESSAGES = [{"role": "user", "content": "Say hi"}]


def _rows(path):
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM llmroute_calls ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "calls.db")


def _client(gw, **kw):
    kw.setdefault("retry", RetryPolicy(max_retries=0))
    return llmroute.Client(gw.base_url, KEY, **kw)


def test_a_chat_writes_one_row_matching_its_result_and_the_tracker(gw, path):
    tracker = CostTracker()
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger, tracker=tracker) as client:
            result = client.chat("gpt-5.4", MESSAGES, max_tokens=20, ledger_tag="nightly")
    (row,) = _rows(path)
    assert row["model"] == "gpt-5.4" and row["status"] == "ok" and row["tag"] == "nightly"
    assert row["prompt_tokens"] == result.usage.prompt_tokens
    assert row["completion_tokens"] == result.usage.completion_tokens
    assert units_to_usd(row["cost_units"]) == result.cost_usd == tracker.total_cost_usd
    assert row["attempts"] == result.attempts and row["request_id"] == result.request_id
    assert row["latency_ms"] == pytest.approx(result.latency_ms)
    assert row["task"] is None and row["routed_via"] is None and row["prompt"] is None
    assert "ledger_tag" not in gw.requests[-1].json  # never sent to the gateway


def test_a_failed_call_writes_a_row_with_its_error_type(gw, path):
    gw.script("gpt-5.4", Reply(status=400))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            with pytest.raises(llmroute.BadRequestError):
                client.chat("gpt-5.4", MESSAGES)
    (row,) = _rows(path)
    assert row["status"] == "BadRequestError" and row["cost_units"] is None
    assert row["latency_ms"] > 0


def test_the_router_writes_one_row_per_model_tried_with_task_and_routed_via(gw, path):
    gw.script("claude-opus-4.6", Reply(status=503))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            result = llmroute.Router(client).complete("Solve the equation 2x + 3 = 11.",
                                                      ledger_tag="tenant-7")
    rows = _rows(path)
    assert [(r["model"], r["status"], r["routed_via"]) for r in rows] == [
        ("claude-opus-4.6", "InternalServerError", "primary"),
        (result.model, "ok", "fallback"),
    ]
    assert {r["task"] for r in rows} == {"math"} and {r["tag"] for r in rows} == {"tenant-7"}


def test_each_repair_turn_of_chat_json_is_a_row(gw, path):
    gw.script("gpt-5.4", Reply(content="not json at all"), Reply(content='{"ok": true}'))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            result = client.chat_json("gpt-5.4", MESSAGES)
    assert result.data == {"ok": True}
    assert [r["status"] for r in _rows(path)] == ["ok", "ok"]


def test_a_stream_writes_one_row_when_it_ends(gw, path):
    gw.script("gpt-5.4", Reply(stream_chunks=["Hel", "lo"]))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            with client.stream("gpt-5.4", MESSAGES, ledger_tag="s") as stream:
                assert "".join(stream) == "Hello"
            result = stream.result()
        ledger.flush()
        (row,) = _rows(path)
    assert row["status"] == "ok" and row["tag"] == "s"
    assert units_to_usd(row["cost_units"]) == result.cost_usd


def test_ledger_by_path_and_by_environment_variable(gw, path, monkeypatch):
    with _client(gw, ledger=path) as client:
        client.chat("gpt-5.4", MESSAGES)
        client.ledger.flush()
    monkeypatch.setenv("LLMROUTE_LEDGER", path)
    with _client(gw) as client:
        client.chat("gpt-5.4", MESSAGES)
        client.ledger.flush()
    monkeypatch.delenv("LLMROUTE_LEDGER")
    with _client(gw) as client:
        assert client.ledger is None
    assert len(_rows(path)) == 2


def test_the_key_is_never_in_the_ledger_and_prompts_only_when_asked(gw, path):
    with Ledger(path, store_prompts=True) as ledger:
        with _client(gw, ledger=ledger) as client:
            client.chat("gpt-5.4", MESSAGES)
    assert _rows(path)[0]["prompt"] == '[{"role": "user", "content": "Say hi"}]'
    for name in (path, path + "-wal"):
        try:
            with open(name, "rb") as f:
                assert KEY.encode() not in f.read()
        except FileNotFoundError:
            pass


def test_a_bad_ledger_argument_is_a_value_error(gw):
    with pytest.raises(ValueError, match="ledger"):
        _client(gw, ledger=42)


def test_rows_total_equals_the_tracker_across_threads(gw, path):
    tracker = CostTracker()
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger, tracker=tracker) as client:
            llmroute.batch(lambda i: client.chat("gpt-5.4", [{"role": "user", "content": "n%d" % i}]),
                           range(40), max_workers=8)
        ledger.flush()
        assert ledger.count() == 40 and ledger.spent_usd() == tracker.total_cost_usd
        assert ledger.spent_usd() > Decimal(0)


def test_the_batch_command_records_every_call_with_ledger(gw, tmp_path, monkeypatch):
    import argparse
    import io
    import json

    from llmroute.cli.batch import add_batch_parser, run_batch

    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    monkeypatch.setenv("LLMROUTE_BASE_URL", gw.base_url)
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"id": i, "model": "gpt-5.4", "prompt": "p%d" % i}) + "\n"
                              for i in range(5)), encoding="utf-8")
    ledger_path = str(tmp_path / "batch.db")
    parser = argparse.ArgumentParser(prog="llmroute")
    add_batch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["batch", str(source), "-o", str(output), "--ledger", ledger_path])
    assert run_batch(args, stderr=io.StringIO()) == 0
    from llmroute.ledger import open_shared
    open_shared(ledger_path).flush()
    assert len(_rows(ledger_path)) == 5
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"junk " * 300)
    args = parser.parse_args(["batch", str(source), "-o", str(tmp_path / "o2.jsonl"),
                              "--ledger", str(bad)])
    err = io.StringIO()
    assert run_batch(args, stderr=err) == 2 and "not a ledger" in err.getvalue()


def test_the_gateways_own_cost_is_stored_when_it_reports_one(gw, path):
    gw.script("gpt-5.4", Reply(headers={"x-litellm-response-cost": "0.000731"}))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            result = client.chat("gpt-5.4", MESSAGES)
    (row,) = _rows(path)
    assert result.gateway_cost_usd == Decimal("0.000731")
    assert units_to_usd(row["gateway_cost_units"]) == Decimal("0.000731")


def test_a_stream_cut_midway_writes_one_error_row(gw, path):
    gw.script("gpt-5.4", Reply(stream_chunks=["a", "b", "c"], cut_after=1))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            with pytest.raises(llmroute.StreamInterruptedError):
                with client.stream("gpt-5.4", MESSAGES) as stream:
                    for _ in stream:
                        pass
    (row,) = _rows(path)
    assert row["status"] == "StreamInterruptedError" and row["latency_ms"] > 0


def test_a_stream_closed_early_writes_its_partial_row(gw, path):
    gw.script("gpt-5.4", Reply(stream_chunks=["a", "b", "c", "d"], chunk_delay=0.01))
    with Ledger(path) as ledger:
        with _client(gw, ledger=ledger) as client:
            with client.stream("gpt-5.4", MESSAGES) as stream:
                next(iter(stream))
            partial = stream.result()
    (row,) = _rows(path)
    assert row["status"] == "ok" and units_to_usd(row["cost_units"]) == partial.cost_usd
