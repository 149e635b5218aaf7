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
from llmroute.cli import main as cli_main
from llmroute.cli.batch import add_parser, run_batch
from llmroute.testing import FakeGateway, Reply

KEY = "sk-test-batch-0123456789"
FAST_RETRY = RetryPolicy(max_retries=1, initial_delay=0, max_delay=0, jitter=0)
ROOT = Path(__file__).resolve().parents[1]


def parse(*argv):
    parser = argparse.ArgumentParser(prog="llmroute")
    add_parser(parser.add_subparsers(dest="command"))
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
    ('{"id": 1, "prompt": "a", "priority": 1%s}' % ("0" * 400), "priority is out of range"),
    ('{"id": 1, "prompt": "a", "priority": NaN}', "NaN is not a JSON number"),
    ('{"id": 1, "prompt": "a", "priority": Infinity}', "Infinity is not a JSON number"),
    ('{"id": 1, "prompt": "a", "temperature": -Infinity}', "-Infinity is not a JSON number"),
    ('{"id": 1, "prompt": "a", "temperature": 1e999}', "out of range"),
    ('{"id": 1, "prompt": "a", "priority": true}', "priority must be"),
    ('{"id": 1, "prompt": "a", "priority": [1]}', "priority must be"),
    ('{"id": 1.5, "prompt": "a"}', "id must be"),
    ('{"id": "", "prompt": "a"}', "id must be"),
    ('{"id": {"a": 1}, "prompt": "a"}', "id must be"),
    ('{"id": 1, "prompt": 7}', "prompt must be"),
    ('{"id": 1, "prompt": ["a"]}', "prompt must be"),
    ('{"id": 1, "messages": "hi"}', "messages must be"),
    ('{"id": 1, "messages": {"role": "user"}}', "messages must be"),
    ('{"id": 1, "messages": [{"role": 3, "content": "x"}]}', "messages[0].role"),
    ('{"id": 1, "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    ('{"id": 1, "messages": [{"role": "user", "content": ["x"]}]}', "messages[0].content"),
    ('{"id": 1, "prompt": "a", "model": ""}', "model must be"),
    ('{"id": 1, "prompt": "a", "model": ["gpt-5.4"]}', "model must be"),
    ('{"id": 1, "prompt": "a", "task": {}}', "task must be"),
    ('{"id": 1, "prompt": "a", "max_cost_usd": "1"}', "max_cost_usd cannot be set"),
])
def test_a_bad_line_becomes_an_item_whose_problem_names_the_line(text, problem):
    item = jb.parse_line(17, text)
    assert item.problem.startswith("line 17: ") and problem in item.problem


def test_absurdly_deep_nesting_is_a_bad_line_not_a_recursion_error():
    item = jb.parse_line(2, "[" * 100_000)
    assert item.problem.startswith("line 2: not valid JSON")


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
    assert gateway.requests[0].bearer_matches(KEY)


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
    caplog.set_level(logging.ERROR, logger="llmroute")  # a log line per retry would slow it
    n = 1_000  # ~60 failures of each kind: enough for every path, quick on a loaded box
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
    code, err = run(src, "-o", out, "--workers", 4, client=client)
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


def batch_command():
    """``python -m llmroute batch``, as a user runs it."""
    return [sys.executable, "-m", "llmroute", "batch"]


def complete_ids(path):
    with open(path, "rb") as f:
        return [json.loads(line)["id"] for line in f if line.endswith(b"\n")]


def test_after_sigkill_resume_finishes_every_id_once_and_resends_none_already_written(
        tmp_path):
    n, workers = 120, 4  # the kill lands after 20 lines: a resume has most of the work left
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
            for _ in range(200):  # at most ~10 s on a loaded box; ~1 s when idle
                if out.exists() and len(complete_ids(out)) >= 20:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(10)
        written_before = set(complete_ids(out))
        assert 20 <= len(written_before) < n
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


# -- odd items: never lost, never repeated, never a traceback ---------------------------------

HALF_EMOJI_BODY = json.dumps({
    "id": "chatcmpl-cut", "object": "chat.completion", "model": "gemini-2.5-flash",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "half \ud83d of an emoji"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})


def test_a_lone_surrogate_in_an_answer_is_written_losslessly_and_resume_skips_it(
        tmp_path, gateway, client):
    assert "\\ud83d" in HALF_EMOJI_BODY  # what a gateway that cut an emoji in half sends
    gateway.script("gemini-2.5-flash", Reply(body=HALF_EMOJI_BODY,
                                             headers={"Content-Type": "application/json"}))
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": "cut", "prompt": "hi", "model": "gemini-2.5-flash"},
        {"id": "cjk", "prompt": "你好，世界", "model": "gpt-5.4"}])
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, client=client)
    assert code == 0, err
    raw = out.read_bytes()
    raw.decode("utf-8")  # the file is valid UTF-8 throughout
    lines = {json.loads(line)["id"]: line for line in raw.splitlines()}
    assert b"\\ud83d" in lines["cut"]  # that record alone uses JSON escapes
    assert json.loads(lines["cut"])["content"] == "half \ud83d of an emoji"  # lossless
    assert "你好".encode("utf-8") in lines["cjk"]  # the others keep their text as written
    sent = len(gateway.requests)
    code, err = run(src, "-o", out, "--resume", client=client)
    assert code == 0 and len(gateway.requests) == sent and "2 skipped" in err


def test_a_resumed_run_sends_no_id_that_already_failed_or_was_invalid(tmp_path, gateway, client):
    gateway.script("gpt-5.4", Reply(status=400))
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": "bad", "prompt": "refused", "model": "gpt-5.4"},
        '{"id": "nan", "prompt": "x", "priority": NaN}',
        '{"id": "big", "prompt": "x", "priority": 1%s}' % ("0" * 400)])
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, client=client)
    assert code == 1 and "Traceback" not in err
    first = read_records(out)
    assert {r["id"] for r in first} == {"bad", "nan", "big"}
    assert {r["line"] for r in first} == {1, 2, 3} and not any(r["ok"] for r in first)
    sent = len(gateway.requests)
    for _ in range(2):  # every resume makes progress: it never meets the same ids again
        code, err = run(src, "-o", out, "--resume", client=client)
        assert code == 0 and "3 skipped" in err and "0 items" in err
    assert len(gateway.requests) == sent and len(read_records(out)) == 3


def test_a_byte_order_mark_and_invalid_utf8_lines_are_handled(tmp_path, client):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": 1, "prompt": "hi", "model": "gpt-5.4"})
                    .encode() + b"\n" + b'{"id": 2, "prompt": "caf\xe9"}\n'
                    + json.dumps({"id": 3, "prompt": "ok", "model": "gpt-5.4"}).encode() + b"\n")
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, client=client)
    assert code == 1 and "Traceback" not in err
    records = {r["line"]: r for r in read_records(out)}
    assert records[1]["ok"] and records[1]["id"] == 1 and records[3]["ok"]
    assert records[2]["error"]["type"] == "InvalidInputLine"
    assert records[2]["error"]["message"].startswith("line 2: not UTF-8")


def test_an_empty_input_file_is_a_run_of_nothing(tmp_path, client):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"")
    out = tmp_path / "out.jsonl"
    code, err = run(src, "-o", out, client=client)
    assert code == 0 and "0 items" in err and out.read_bytes() == b""


@pytest.mark.parametrize("which", ["input", "output"])
def test_a_directory_as_input_or_output_is_one_clear_line_and_exit_2(tmp_path, client, which):
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi", "model": "gpt-5.4"}])
    folder = tmp_path / "folder"
    folder.mkdir()
    argv = (folder, "-o", tmp_path / "out.jsonl") if which == "input" else (src, "-o", folder)
    code, err = run(*argv, client=client)
    assert code == 2 and ("is a directory" in err or "not a readable file" in err)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unreadable_input_is_a_usage_error(tmp_path, client):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi", "model": "gpt-5.4"}])
    src.chmod(0)
    try:
        code, err = run(src, "-o", tmp_path / "out.jsonl", client=client)
    finally:
        src.chmod(0o600)
    assert code == 2 and "Permission denied" in err and "Traceback" not in err


def test_a_last_output_line_cut_inside_a_character_is_repaired_on_resume(tmp_path, client):
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": "p", "model": "gpt-5.4"}
                                              for i in range(3)])
    out = tmp_path / "out.jsonl"
    whole = (json.dumps({"id": 0, "ok": True}) + "\n").encode()
    cut = json.dumps({"id": 1, "ok": True, "content": "é"}, ensure_ascii=False).encode()
    out.write_bytes(whole + cut[:cut.index("é".encode()) + 1])  # half of a 2-byte character
    code, err = run(src, "-o", out, "--resume", client=client)
    assert code == 0, err
    assert sorted(r["id"] for r in read_records(out)) == [0, 1, 2]
    assert "cut a half-written last line" in err


def test_an_output_record_with_a_nonsense_cost_does_not_stop_a_resume(tmp_path, gateway, client):
    out = write_lines(tmp_path / "out.jsonl", [{"id": 1, "ok": True, "cost_usd": "NaN"},
                                               {"id": 2, "ok": True, "cost_usd": "-3"},
                                               {"id": 3, "ok": True, "cost_usd": "0.25"}])
    src = write_lines(tmp_path / "in.jsonl", [{"id": i, "prompt": "p", "model": "gpt-5.4"}
                                              for i in range(1, 5)])
    code, err = run(src, "-o", out, "--resume", "--budget-usd", "1", client=client)
    assert code == 0, err
    assert [r["id"] for r in read_records(out)] == [1, 2, 3, 4]


def test_bad_money_options_exit_2_with_one_line_through_the_main_command(tmp_path, capsys):
    for amount in ("abc", "-1", "NaN", "Infinity"):
        assert cli_main(["batch", "in.jsonl", "-o", "out.jsonl", "--budget-usd", amount]) == 2
        err = capsys.readouterr().err
        assert "--budget-usd" in err and "Traceback" not in err
# -- shards and a shared quota ------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["3/3", "-1/2", "1", "a/b", "0/0", "1/-2", "/2"])
def test_a_bad_shard_exits_2(tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as info:
        parse(tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--shard", bad)
    assert info.value.code == 2
    assert "I/N" in capsys.readouterr().err


def test_shards_split_the_input_once_and_each_resumes_its_own_output(tmp_path, gateway, client):
    rows = [{"id": i, "prompt": "p%d" % i, "model": "m"} for i in range(30)] + [
        {"id": "x%d" % i, "prompt": "q", "model": "m"} for i in range(10)]
    source = write_lines(tmp_path / "in.jsonl", rows)
    seen = []
    for i in range(3):
        out = tmp_path / ("out%d.jsonl" % i)
        code, err = run(source, "-o", out, "--shard", "%d/3" % i, client=client)
        assert code == 0 and "shard %d/3" % i in err
        seen.append([r["id"] for r in read_records(out)])
        code, _ = run(source, "-o", out, "--shard", "%d/3" % i, "--resume", client=client)
        assert code == 0 and len(read_records(out)) == len(seen[-1])  # nothing run twice
    everything = [i for ids in seen for i in ids]
    assert sorted(map(str, everything)) == sorted(str(r["id"]) for r in rows)
    assert all(len(ids) >= 5 for ids in seen)  # the hash spreads the ids
    assert len(gateway.requests) == len(rows)
    assert jb.shard_of(jb.id_key(7), 3) == jb.shard_of(json.dumps(7), 3)  # the id's JSON text


def test_redis_shares_the_quota_budget_and_health_of_the_hosts(tmp_path, env, gateway,
                                                               redis_url, redis_client):
    import uuid

    namespace = "batch-" + uuid.uuid4().hex[:8]
    source = write_lines(tmp_path / "in.jsonl", [
        {"id": i, "prompt": "p", "model": "gpt-5.4", "max_tokens": 8} for i in range(6)])
    code, err = run(source, "-o", tmp_path / "out.jsonl", "--shard", "0/1", "--rpm", "6000",
                    "--max-concurrent", "2", "--budget-usd", "5", "--redis", redis_url,
                    "--namespace", namespace)
    assert code == 0, err
    assert redis_client.keys("llmroute:{%s/budget}:*" % namespace)  # the fleet budget is there
    from llmroute import Budget

    spent = Budget("5", backend=redis_url, namespace=namespace).spent_usd
    assert spent > 0


def test_a_boolean_max_tokens_on_a_line_never_reaches_the_gateway(tmp_path, gateway, client):
    src = write_lines(tmp_path / "in.jsonl", [
        {"id": "x", "prompt": "a", "model": "gpt-5.4", "max_tokens": True},
        {"id": "y", "prompt": "b", "model": "gpt-5.4", "max_tokens": 20}])
    code, err = run(src, "-o", tmp_path / "out.jsonl", "--no-progress", client=client)
    assert code == 1, err
    assert [r.json.get("max_tokens") for r in gateway.requests] == [20]
    failed = next(r for r in read_records(tmp_path / "out.jsonl") if r["id"] == "x")
    assert failed["ok"] is False and "max_tokens" in json.dumps(failed)
