"""``llmroute batch``: one OUTPUT line per id as each finishes, invalid lines reported, exit
codes, Idempotency-Keys, resume after SIGKILL with no id sent twice, repair of a cut line."""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import llmroute
from llmroute import Client, RetryPolicy
from llmroute.cli import jsonl as jb
from llmroute.cli.batch import add_batch_parser, run_batch
from llmroute.testing import FakeGateway, Reply

KEY = "sk-test-batch-0123456789"
FAST_RETRY = RetryPolicy(max_retries=1, initial_delay=0, max_delay=0, jitter=0)
ROOT = Path(__file__).resolve().parents[1]


def parse(*argv):
    parser = argparse.ArgumentParser(prog="llmroute")
    add_batch_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["batch", *map(str, argv)])


def write_lines(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def run(*argv, client=None):
    err = io.StringIO()
    code = run_batch(parse(*argv), client=client, stderr=err)
    return code, err.getvalue()


def key_of(item_id):
    return jb.idempotency_key(jb.id_key(item_id))


@pytest.fixture
def gateway():
    with FakeGateway() as gw:
        yield gw


@pytest.fixture
def client(gateway):
    with Client(gateway.base_url, KEY, retry=FAST_RETRY) as c:
        yield c


@pytest.fixture
def env(monkeypatch, gateway):
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    monkeypatch.setenv("LLMROUTE_BASE_URL", gateway.base_url)


# -- input lines ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"prompt": "hi"}', "missing id"),
    ('{"id": [1], "prompt": "hi"}', "id must be"),
    ('{"id": true, "prompt": "hi"}', "id must be"),
    ('{"id": 1}', "give a prompt or messages"),
    ('{"id": 1, "prompt": "a", "messages": [{"role": "user", "content": "b"}]}', "not both"),
    ('{"id": 1, "prompt": "  "}', "prompt must be"),
    ('{"id": 1, "messages": []}', "messages must be"),
    ('{"id": 1, "messages": [{"content": "no role"}]}', "messages must be"),
    ('{"id": 1, "prompt": "a", "model": 7}', "model must be"),
    ('{"id": 1, "prompt": "a", "priority": "fastest"}', "priority must be"),
    ('{"id": 1, "prompt": "a", "stream": true}', "stream cannot be set"),
])
def test_a_bad_line_becomes_an_item_whose_problem_names_the_line(text, problem):
    item = jb.parse_line(17, text)
    assert item.problem.startswith("line 17: ") and problem in item.problem


def test_a_good_line_splits_into_item_fields_and_openai_params():
    item = jb.parse_line(3, json.dumps({"id": "a", "prompt": "hi", "model": "gpt-5.4",
                                        "task": "code", "priority": 2, "temperature": 0.2,
                                        "max_tokens": 50}))
    assert item.problem is None and item.key == '"a"' and item.line == 3
    assert (item.model, item.task, item.rank, item.route_priority) == ("gpt-5.4", "code", 2.0,
                                                                        None)
    assert item.params == {"temperature": 0.2, "max_tokens": 50}
    assert jb.parse_line(1, '{"id": 1, "prompt": "x", "priority": "speed"}').route_priority \
        == "speed"


def test_ids_one_and_string_one_are_different_items_with_different_keys():
    assert jb.id_key(1) != jb.id_key("1")
    assert key_of(1) != key_of("1") and key_of(1) == key_of(1)
    assert key_of("a").startswith("llmroute-") and len(key_of("a")) == len("llmroute-") + 32


# -- a whole run ------------------------------------------------------------------------------

def test_every_id_is_written_once_with_its_result_and_requests_carry_its_key(
        tmp_path, gateway, client):
    rows = [{"id": i, "prompt": "question %d" % i, "model": "gpt-5.4", "max_tokens": 30}
            for i in range(40)]
    rows.append({"id": "m", "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hello"}],
                 "model": "gemini-2.5-flash", "temperature": 0})
    src = write_lines(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, "--workers", 4, client=client)
    assert code == 0, err
    records = read_records(out)
    assert sorted(map(str, (r["id"] for r in records))) == sorted(str(r["id"]) for r in rows)
    first = next(r for r in records if r["id"] == 7)
    assert first["ok"] is True and first["model"] == "gpt-5.4"
    assert "question 7" in first["content"] and first["line"] == 8
    assert first["usage"]["total_tokens"] > 0 and first["attempts"] == 1
    assert isinstance(first["cost_usd"], str) and float(first["cost_usd"]) > 0
    assert first["latency_ms"] > 0
    by_key = {r.header("Idempotency-Key"): r for r in gateway.requests}
    assert set(by_key) == {key_of(row["id"]) for row in rows}
    sent = by_key[key_of("m")].json
    assert sent["temperature"] == 0 and sent["messages"][0]["role"] == "system"
    assert by_key[key_of(3)].json["max_tokens"] == 30
    assert "41 items: 41 ok, 0 failed" in err
    assert "gpt-5.4" in err and "gemini-2.5-flash" in err and "p99 ms" in err


def test_a_retried_item_sends_the_same_idempotency_key_again(tmp_path, gateway, client):
    gateway.script("gpt-5.4", Reply(status=503))
    src = write_lines(tmp_path / "in.jsonl", [{"id": "x", "prompt": "hi", "model": "gpt-5.4"}])
    code, _ = run(src, "-o", tmp_path / "out.jsonl", client=client)
    assert code == 0
    keys = [r.header("Idempotency-Key") for r in gateway.requests]
    assert keys == [key_of("x"), key_of("x")]
    assert read_records(tmp_path / "out.jsonl")[0]["attempts"] == 2


def test_invalid_lines_are_reported_with_their_line_number_and_do_not_stop_the_run(
        tmp_path, client):
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": 1, "prompt": "ok", "model": "gpt-5.4"},
        "{broken",
        {"id": 1, "prompt": "duplicate", "model": "gpt-5.4"},
        {"id": 2},
        "",
        {"id": 3, "prompt": "ok too", "model": "gpt-5.4"},
    ])
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, client=client)
    assert code == 1
    records = {(r["id"], r.get("line")): r for r in read_records(out)}
    assert len(records) == 5
    bad_json = records[(None, 2)]
    assert bad_json["ok"] is False and bad_json["error"]["type"] == "InvalidInputLine"
    assert bad_json["error"]["message"].startswith("line 2: not valid JSON")
    assert "duplicate id 1 (first on line 1)" in records[(None, 3)]["error"]["message"]
    assert records[(2, 4)]["error"]["message"] == "line 4: give a prompt or messages"
    assert records[(1, 1)]["ok"] and records[(3, 6)]["ok"]
    assert [r["id"] for r in read_records(out)].count(1) == 1  # the duplicate has no id
    assert "3 invalid lines" in err and "line 2: not valid JSON" in err
    assert "line 4: give a prompt" in err

    # Resume keys invalid lines by their line: nothing is written twice.
    code, err = run(src, "-o", out, "--resume", client=client)
    assert code == 0 and len(read_records(out)) == 5
    assert "5 skipped" in err


def test_router_picks_a_model_for_lines_without_one(tmp_path, gateway, client):
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": "code", "prompt": "Write a Python function that reverses a linked list."},
        {"id": "chat", "messages": [{"role": "user", "content": "Hi, how are you today?"}],
         "priority": "budget"},
        {"id": "given", "prompt": "Translate 'good morning' to French", "task": "general"},
    ])
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, client=client)
    assert code == 0, err
    records = {r["id"]: r for r in read_records(out)}
    assert set(records) == {"code", "chat", "given"}
    for record in records.values():
        assert record["ok"] and record["routed_via"] == "primary"
        assert record["model"] in llmroute.catalog.default_catalog()
        assert record["task"]
    assert records["code"]["task"] == "code" and records["given"]["task"] == "general"
    keys = Counter(r.header("Idempotency-Key") for r in gateway.requests)
    assert set(keys) == {key_of("code"), key_of("chat"), key_of("given")}


def test_max_cost_refuses_an_item_before_anything_is_sent(tmp_path, gateway, client):
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": 1, "prompt": "an essay", "model": "claude-opus-4.6", "max_tokens": 100000}])
    out = tmp_path / "out.jsonl"
    code, _ = run(src, "-o", out, "--max-cost-usd", "0.001", client=client)
    assert code == 1
    record = read_records(out)[0]
    assert record["error"]["type"] == "BudgetExceededError"
    assert "--max-cost-usd" in record["error"]["message"]
    assert gateway.requests == []


def test_budget_counts_what_output_already_cost_on_resume(tmp_path, gateway, client):
    out = write_lines(tmp_path / "out.jsonl", [
        {"id": 1, "ok": True, "model": "gpt-5.4", "cost_usd": "0.50"}])
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": 1, "prompt": "done already", "model": "gpt-5.4"},
        {"id": 2, "prompt": "too much now", "model": "gpt-5.4", "max_tokens": 1000}])
    code, _ = run(src, "-o", out, "--resume", "--budget-usd", "0.50", client=client)
    assert code == 1
    assert read_records(out)[1]["error"]["type"] == "BudgetExceededError"
    assert gateway.requests == []


# -- usage errors -----------------------------------------------------------------------------

def test_an_existing_output_needs_resume_or_overwrite(tmp_path, client):
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi", "model": "gpt-5.4"}])
    out = write_lines(tmp_path / "out.jsonl", [{"id": 9, "ok": True}])
    code, err = run(src, "-o", out, client=client)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert read_records(out) == [{"id": 9, "ok": True}]
    code, _ = run(src, "-o", out, "--overwrite", client=client)
    assert code == 0 and [r["id"] for r in read_records(out)] == [1]


def test_missing_input_and_missing_key_exit_2_with_one_clear_line(tmp_path, env, monkeypatch):
    code, err = run(tmp_path / "nope.jsonl", "-o", tmp_path / "out.jsonl")
    assert code == 2 and "nope.jsonl" in err and "Traceback" not in err
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi"}])
    monkeypatch.delenv("LLMROUTE_API_KEY")
    code, err = run(src, "-o", tmp_path / "out.jsonl")
    assert code == 2 and "LLMROUTE_API_KEY" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_options_are_rejected_by_the_parser_and_there_is_no_key_flag(tmp_path):
    for argv in (["in", "-o", "out", "--workers", "0"], ["in", "-o", "out", "--rpm", "-1"],
                 ["in", "-o", "out", "--priority", "cheapest"], ["in", "-o", "out",
                                                               "--api-key", KEY],
                 ["in"], ["in", "-o", "out", "--resume", "--overwrite"]):
        with pytest.raises(SystemExit) as caught:
            parse(*argv)
        assert caught.value.code == 2


def test_the_command_reads_the_key_and_url_from_the_environment(tmp_path, env, gateway):
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi", "model": "gpt-5.4"}])
    code, err = run(src, "-o", tmp_path / "out.jsonl", "--rpm", 6000, "--max-concurrent", 2)
    assert code == 0, err
    assert gateway.requests[0].header("Authorization") == "Bearer " + KEY


# -- resume -----------------------------------------------------------------------------------

def test_a_half_written_last_line_is_cut_off_and_its_id_run_again(tmp_path, gateway, client):
    src = write_lines(tmp_path / "in.jsonl",
                      [{"id": i, "prompt": "p%d" % i, "model": "gpt-5.4"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    with open(out, "w") as f:
        f.write(json.dumps({"id": 0, "ok": True, "model": "gpt-5.4"}) + "\n")
        f.write(json.dumps({"id": 1, "ok": True, "model": "gpt-5.4"}) + "\n")
        f.write('{"id": 2, "ok": true, "model": "gpt-5.4", "cont')  # a write cut by a kill
    code, err = run(src, "-o", out, "--resume", client=client)
    assert code == 0, err
    records = read_records(out)  # every line parses
    assert sorted(r["id"] for r in records) == [0, 1, 2, 3, 4]
    assert {r.header("Idempotency-Key") for r in gateway.requests} == {
        key_of(2), key_of(3), key_of(4)}
    assert "cut a half-written last line" in err


def test_a_whole_last_record_missing_only_its_newline_is_kept(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 0, "ok": true}\n{"id": 1, "ok": false, "error": {}}')
    state = jb.scan_output(str(out))
    assert state.done == {"0", "1"} and state.completed_line and not state.repaired_bytes
    assert out.read_text().endswith("}\n") and len(read_records(out)) == 2


def test_a_corrupt_line_before_the_end_stops_a_resume_with_exit_2(tmp_path, client):
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi", "model": "gpt-5.4"}])
    out = write_lines(tmp_path / "out.jsonl", ['{"id": 0, "ok": true}', "garbage",
                                               '{"id": 2, "ok": true}'])
    code, err = run(src, "-o", out, "--resume", client=client)
    assert code == 2 and "line 2" in err


def test_ctrl_c_writes_what_finished_exits_130_and_resume_finishes_the_rest(
        tmp_path, gateway, client, monkeypatch):
    import llmroute.batching as batch_module

    real_wait, calls = batch_module._wait_done, {"n": 0}

    def wait(done, timeout=None):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_wait(done, timeout)

    monkeypatch.setattr(batch_module, "_wait_done", wait)
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": "p%d" % i, "model": "gpt-5.4"}
                                              for i in range(50)])
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, "--workers", 2, client=client)
    assert code == 130 and "--resume" in err
    first = [r["id"] for r in read_records(out)]
    assert 9 <= len(first) < 50 and len(set(first)) == len(first)
    monkeypatch.setattr(batch_module, "_wait_done", real_wait)
    code, _ = run(src, "-o", out, "--resume", client=client)
    assert code == 0
    assert sorted(r["id"] for r in read_records(out)) == list(range(50))


def test_with_a_fifth_of_calls_failing_every_id_appears_exactly_once(
        tmp_path, gateway, client, caplog):
    caplog.set_level(logging.ERROR, logger="llmroute")  # a warning per retry would slow it
    n = 10_000
    rng = random.Random(20)
    lock = threading.Lock()

    def responder(request):
        with lock:
            roll = rng.random()
        if roll < 0.07:
            return Reply(status=429)
        if roll < 0.14:
            return Reply(status=503)
        if roll < 0.20:
            return Reply(drop=True)
        return None

    gateway.responder = responder
    src = write_lines(tmp_path / "in.jsonl", ({"id": "item-%d" % i, "prompt": "q %d" % i,
                                               "model": "gpt-5.4"} for i in range(n)))
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    code, err = run(src, "-o", out, "--workers", 4, client=client)
    elapsed = time.monotonic() - started
    records = read_records(out)
    ids = Counter(r["id"] for r in records)
    assert len(ids) == n and set(ids.values()) == {1}, "ids missing or repeated"
    failed = [r for r in records if not r["ok"]]
    assert code == 1 and 0 < len(failed) < n * 0.1  # a retry rescues most failures
    assert {r["error"]["type"] for r in failed} <= {
        "RateLimitError", "InternalServerError", "APIConnectionError"}
    keys = Counter(r.header("Idempotency-Key") for r in gateway.requests)
    assert set(keys) == {key_of("item-%d" % i) for i in range(n)} and max(keys.values()) <= 2
    assert KEY not in out.read_text() and KEY not in err
    assert elapsed < 60, elapsed


def batch_command():
    """``python -m llmroute batch``, as a user runs it."""
    return [sys.executable, "-m", "llmroute", "batch"]


def complete_ids(path):
    with open(path, "rb") as f:
        return [json.loads(line)["id"] for line in f if line.endswith(b"\n")]


def test_after_sigkill_resume_finishes_every_id_once_and_resends_none_already_written(
        tmp_path):
    n, workers = 240, 4
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": "item %d" % i,
                                               "model": "gpt-5.4"} for i in range(n)])
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, LLMROUTE_API_KEY=KEY, PYTHONPATH=str(ROOT))
    with FakeGateway(latency=0.05) as gw:
        env["LLMROUTE_BASE_URL"] = gw.base_url
        argv = batch_command() + [str(src), "-o", str(out), "--workers", str(workers)]
        proc = subprocess.Popen(argv, env=env, cwd=str(tmp_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(400):  # at most ~20 s
                if out.exists() and len(complete_ids(out)) >= 40:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(10)
        written_before = set(complete_ids(out))
        assert 40 <= len(written_before) < n
        sent_before = len(gw.requests)

        gw.latency = 0.002
        resumed = subprocess.run(argv + ["--resume"], env=env, cwd=str(tmp_path),
                                 capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        records = read_records(out)  # every line parses
        ids = Counter(r["id"] for r in records)
        assert sorted(ids) == list(range(n)) and set(ids.values()) == {1}

        by_key = {key_of(i): i for i in range(n)}
        before = [by_key[r.header("Idempotency-Key")] for r in gw.requests[:sent_before]]
        after = [by_key[r.header("Idempotency-Key")] for r in gw.requests[sent_before:]]
    assert not written_before.intersection(after), "an id already in OUTPUT was sent again"
    # Sent again with the same key: the items running at the kill, plus any whose answer had
    # arrived but was not yet written; batch() holds at most 2 x workers futures.
    resent = set(before).intersection(after)
    assert len(resent) <= 2 * workers
    assert set(after) == set(range(n)) - written_before
