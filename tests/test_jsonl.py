"""cli/jsonl and cli/output: strict input lines, the lazy reader, OUTPUT's encoding, records
and the resume scan, as units (the command end to end is in test_batch_cli.py)."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from llmroute.batching import ItemResult
from llmroute.cli import jsonl as jb

KEY = "sk-test-jsonl-0123456789abcdef"


def lines_file(path, *rows):
    path.write_bytes(b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                              for r in rows))
    return str(path)


# -- input lines ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "-1e400"])
def test_loads_strict_refuses_what_json_cannot_carry(text):
    with pytest.raises(ValueError):
        jb.loads_strict(text)


def test_loads_strict_reads_ordinary_json_as_json_does():
    text = '{"a": [1, 2.5, -3e10, true, null, "x"], "b": 123456789012345678901234567890}'
    assert jb.loads_strict(text) == json.loads(text)


def test_a_line_with_nan_names_its_id_so_resume_matches_it():
    item = jb.parse_line(4, '{"id": "q", "prompt": "x", "temperature": NaN}')
    assert item.problem == "line 4: not valid JSON: NaN is not a JSON number"
    assert item.id == "q" and item.key == jb.id_key("q")


def test_parse_line_never_raises_whatever_the_line():
    rng = random.Random(9)
    base = json.dumps({"id": 1, "prompt": "hi", "priority": 2, "messages": None,
                       "model": "m", "temperature": 0.5})
    alphabet = '{}[]":,0123456789.eE-+ntrufalsNIiy\\\\ud8x'
    for _ in range(2000):
        chars = list(base)
        for _ in range(rng.randint(1, 6)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        item = jb.parse_line(1, "".join(chars))
        assert isinstance(item, jb.Item)
        assert item.problem is None or item.problem.startswith("line 1: ")


def test_a_valid_numeric_priority_orders_submission():
    assert jb.parse_line(1, '{"id": 1, "prompt": "x", "priority": -2.5}').rank == -2.5
    assert jb.parse_line(1, '{"id": 1, "prompt": "x", "priority": %d}' % 10 ** 30).rank \
        == 1e30
    assert jb.parse_line(1, '{"id": 1, "prompt": "x"}').rank == 0.0


def test_messages_with_part_lists_and_null_content_are_accepted():
    item = jb.parse_line(1, json.dumps({"id": 1, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": []}]}))
    assert item.problem is None and len(item.messages) == 2


def test_an_id_with_a_lone_surrogate_has_an_idempotency_key():
    item = jb.parse_line(1, '{"id": "half \\ud83d", "prompt": "x"}')
    assert item.problem is None
    key = jb.idempotency_key(item.key)
    assert key.startswith("llmroute-") and key == jb.idempotency_key(item.key)


# -- the reader -------------------------------------------------------------------------------

def test_the_reader_accepts_a_bom_skips_blank_lines_and_reports_bad_bytes(tmp_path):
    path = lines_file(tmp_path / "in.jsonl",
                      b"\xef\xbb\xbf" + json.dumps({"id": 1, "prompt": "a"}).encode(), b"   ",
                      b'{"id": 2, "prompt": "\xff"}', {"id": 3, "prompt": "c"},
                      {"id": 1, "prompt": "again"})
    reader = jb.InputReader(path)
    items = list(reader)
    assert [(i.line, i.id, i.problem is None) for i in items] == [
        (1, 1, True), (3, None, False), (4, 3, True), (5, None, False)]
    assert items[1].problem.startswith("line 3: not UTF-8")
    assert "duplicate id 1 (first on line 1)" in items[3].problem
    assert reader.lines == 5


def test_the_reader_skips_done_ids_and_done_invalid_lines(tmp_path):
    path = lines_file(tmp_path / "in.jsonl", {"id": 1, "prompt": "a"}, b"{broken",
                      {"id": 2, "prompt": "b"})
    reader = jb.InputReader(path, done={jb.id_key(1), "line:2"})
    assert [i.id for i in reader] == [2] and reader.skipped == 2


def test_a_bom_alone_is_an_empty_input(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf")
    assert list(jb.InputReader(str(path))) == []


# -- encoding and records ---------------------------------------------------------------------

def test_a_record_with_a_lone_surrogate_is_escaped_and_reads_back_the_same():
    record = {"id": 1, "content": "half \ud83d", "note": "日本語"}
    data = jb.encode_record(record)
    assert data.endswith(b"\n") and data.decode("ascii")  # escaped: plain ASCII
    assert b"\\ud83d" in data and json.loads(data) == record


def test_an_ordinary_record_keeps_its_text_as_written():
    data = jb.encode_record({"id": 1, "content": "日本語 🙂"})
    assert "日本語 🙂".encode("utf-8") in data


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1j: 2}])
def test_what_json_cannot_hold_is_an_unwritable_record(value):
    with pytest.raises(jb.UnwritableRecord):
        jb.encode_record({"id": 1, "content": value})
    cycle = {"id": 1}
    cycle["self"] = cycle
    with pytest.raises(jb.UnwritableRecord):
        jb.encode_record(cycle)


def item(line=1, item_id="a", model="gpt-5.4"):
    return jb.Item(line, item_id, jb.id_key(item_id), prompt="hi", model=model)


def test_an_answer_that_cannot_be_written_becomes_an_error_record_for_its_id():
    odd = SimpleNamespace(content=float("nan"), model="gpt-5.4", cost_usd=None, usage=None)
    result, record, data = jb.outcome_line(ItemResult(0, True, value=odd, latency_ms=3.0,
                                                      item=item()))
    assert not result.ok and isinstance(result.error, jb.UnwritableRecord)
    assert record["id"] == "a" and record["ok"] is False and record["line"] == 1
    assert record["error"]["type"] == "UnwritableRecord"
    assert "could not be written" in record["error"]["message"]
    assert json.loads(data) == record


def test_an_answer_whose_attributes_raise_becomes_an_error_record():
    class Broken:
        @property
        def content(self):
            raise RuntimeError("lazy body failed")

    result, record, _ = jb.outcome_line(ItemResult(0, True, value=Broken(), item=item()))
    assert not result.ok and "lazy body failed" in record["error"]["message"]


def test_an_error_with_a_broken_str_and_a_secret_is_written_safely():
    class Unprintable(Exception):
        def __str__(self):
            raise TypeError("no")

    _, record, _ = jb.outcome_line(ItemResult(0, False, error=Unprintable(), item=item()))
    assert record["error"] == {"type": "Unprintable",
                               "message": "<Unprintable with an unprintable message>"}
    _, record, _ = jb.outcome_line(ItemResult(0, False, error=OSError("key %s" % KEY),
                                              item=item()), secrets=(KEY,))
    assert KEY not in record["error"]["message"] and "[REDACTED]" in record["error"]["message"]


def test_result_record_carries_usage_cost_and_tool_calls():
    value = SimpleNamespace(
        model="gpt-5.4", content=None, finish_reason="tool_calls", cost_usd="0.01",
        usage=SimpleNamespace(prompt_tokens=3, completion_tokens=4, total_tokens=7,
                              cached_tokens=1, reasoning_tokens=None),
        attempts=2, tool_calls=[SimpleNamespace(id="c1", name="f", arguments={"x": 1})])
    record = jb.result_record(item(line=9), value, 12.34)
    assert record["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                               "cached_tokens": 1}
    assert record["tool_calls"] == [{"id": "c1", "name": "f", "arguments": {"x": 1}}]
    assert (record["latency_ms"], record["attempts"], record["line"]) == (12.3, 2, 9)


# -- the writer, the scan and a whole run -----------------------------------------------------

def test_the_writer_appends_whole_lines_and_writes_nothing_for_an_unwritable_record(tmp_path):
    path = str(tmp_path / "out.jsonl")
    with jb.OutputWriter(path) as writer:
        writer.write({"id": 1, "ok": True})
        with pytest.raises(jb.UnwritableRecord):
            writer.write({"id": 2, "content": object()})
        writer.write({"id": 3, "ok": False})
    assert [json.loads(line)["id"] for line in open(path, encoding="utf-8")] == [1, 3]
    assert writer.written == 2


def test_scan_output_reads_ids_costs_and_a_bom(tmp_path):
    path = lines_file(tmp_path / "out.jsonl",
                      b"\xef\xbb\xbf" + json.dumps({"id": 1, "ok": True, "cost_usd": "0.5"})
                      .encode(),
                      {"id": None, "ok": False, "line": 4,
                       "error": {"type": "InvalidInputLine"}},
                      {"id": "x", "ok": True, "cost_usd": "Infinity"})
    state = jb.scan_output(path)
    assert state.done == {jb.id_key(1), "line:4", jb.id_key("x")}
    assert str(state.spent_usd) == "0.5" and state.lines == 3
    assert jb.scan_output(str(tmp_path / "missing.jsonl")).done == set()


def test_a_run_with_odd_answers_writes_each_id_once_and_a_resume_calls_nothing(tmp_path):
    answers = {0: SimpleNamespace(content="fine", model="m", cost_usd=None, usage=None),
               1: SimpleNamespace(content="half \ud83d", model="m", cost_usd=None, usage=None),
               2: SimpleNamespace(content=object(), model="m", cost_usd=None, usage=None)}
    src = lines_file(tmp_path / "in.jsonl", *({"id": i, "prompt": "p", "model": "m"}
                                              for i in range(4)),
                     b'{"id": 9, "prompt": "p", "priority": Infinity}')
    out = str(tmp_path / "out.jsonl")
    calls = []

    def call(it):
        calls.append(it.id)
        if it.id == 3:
            raise ConnectionError("reset")
        return answers[it.id]

    with jb.OutputWriter(out) as writer:
        summary = jb.run(jb.InputReader(src), writer, call, workers=2)
    records = {r["id"]: r for r in map(json.loads, open(out, "rb"))}
    assert sorted(records) == [0, 1, 2, 3, 9] and sorted(calls) == [0, 1, 2, 3]
    assert records[0]["ok"] and records[1]["ok"] and records[1]["content"] == "half \ud83d"
    assert records[2]["error"]["type"] == "UnwritableRecord"
    assert records[3]["error"]["type"] == "ConnectionError"
    assert records[9]["error"]["type"] == "InvalidInputLine"
    assert (summary.ok, summary.failed, summary.invalid) == (2, 3, 1)

    reader = jb.InputReader(src, jb.scan_output(out).done)
    with jb.OutputWriter(out) as writer:
        jb.run(reader, writer, call, workers=2)
    assert sorted(calls) == [0, 1, 2, 3] and reader.skipped == 5


@pytest.mark.parametrize("text", ['{"id": 1, "prompt": "a", "id": 2}',
                                  '{"id": 1, "messages": [{"role": "user", "role": "system",'
                                  ' "content": "x"}]}'])
def test_a_line_with_a_key_twice_is_an_error_record_naming_the_key(text):
    item = jb.parse_line(3, text)
    assert item.problem is not None and item.problem.startswith("line 3: ")
    assert "appears twice" in item.problem
    assert item.key == "line:3"  # which id was meant is unknown: matched by line, not id


@pytest.mark.parametrize("field, value", [
    ("max_tokens", True), ("max_tokens", 0), ("max_tokens", 1.5), ("max_tokens", "50"),
    ("max_completion_tokens", False), ("n", True), ("temperature", True),
    ("temperature", "hot"), ("top_p", None),
])
def test_a_numeric_openai_param_that_is_not_a_number_is_an_error_record(field, value):
    item = jb.parse_line(2, json.dumps({"id": "x", "prompt": "a", field: value}))
    assert item.problem is not None and field in item.problem, item.problem


def test_numeric_openai_params_that_are_numbers_pass_through():
    item = jb.parse_line(2, json.dumps({"id": "x", "prompt": "a", "max_tokens": 50, "n": 1,
                                        "temperature": 0, "top_p": 0.9, "seed": True}))
    assert item.problem is None
    assert item.params == {"max_tokens": 50, "n": 1, "temperature": 0, "top_p": 0.9,
                           "seed": True}  # params llmroute does not read go through as given
