"""The fake gateway's pure reply functions (``_replies``, ``_instances``), without a server."""
from __future__ import annotations

import json

import pytest

from llmroute.schema import validate
from llmroute.testing import Reply
from llmroute.testing._instances import instance_for
from llmroute.testing._replies import (Answer, choice_count, completion_body, error_body,
                                       forced_tool_call, json_content, plan_answer,
                                       stream_events, unknown_model_body, wait_hint)
from llmroute.tokens import estimate_tokens

MODEL = "m"
MESSAGES = [{"role": "user", "content": "hello there"}]


def events_of(stream):
    """Every ``data:`` payload of a StreamEvents, decoded; ``[DONE]`` becomes ``None``."""
    raw = stream.head + b"".join(stream.deltas) + b"".join(stream.tail)
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        if block:
            assert block.startswith("data: ")
            data = block[len("data: "):]
            out.append(None if data == "[DONE]" else json.loads(data))
    return out


# -- instance_for ------------------------------------------------------------------------------

@pytest.mark.parametrize("schema, expected", [
    ({"type": "string"}, "fake"),
    ({"type": "string", "minLength": 6}, "fakexx"),
    ({"type": "string", "maxLength": 2}, "fa"),
    ({"type": "string", "format": "date"}, "2026-01-01"),
    ({"type": "integer"}, 0),
    ({"type": "integer", "minimum": 3}, 3),
    ({"type": "integer", "exclusiveMinimum": 3}, 4),
    ({"type": "integer", "maximum": -2}, -2),
    ({"type": "integer", "minimum": 5, "multipleOf": 4}, 8),
    ({"type": "number", "exclusiveMinimum": 0}, 0.5),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.1}, 0.05),
    ({"type": "number", "minimum": 1.5}, 1.5),
    ({"type": "boolean"}, False),
    ({"type": "null"}, None),
    ({"type": ["null", "integer"]}, 0),
    ({"enum": ["b", "a"]}, "b"),
    ({"const": {"k": 1}}, {"k": 1}),
    ({"type": "array"}, []),
    ({"type": "array", "items": {"type": "integer"}}, [0]),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 3}, [0, 0, 0]),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 0}, []),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}, ["fake", False]),
    ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}, {"a": 0}),
    ({"required": ["x"], "additionalProperties": {"type": "boolean"}}, {"x": False}),
    ({"anyOf": [{"type": "null"}, {"type": "string"}]}, "fake"),
    ({"oneOf": [{"type": "integer", "minimum": 2}, {"type": "string"}]}, 2),
    ({"allOf": [{"required": ["a"], "properties": {"a": {"type": "string"}}},
                {"required": ["b"], "properties": {"b": {"type": "integer"}}}]},
     {"a": "fake", "b": 0}),
    ({}, None),
])
def test_instance_for_gives_the_minimal_valid_value(schema, expected):
    value = instance_for(schema)
    assert value == expected and type(value) is type(expected)


def test_instance_for_follows_local_refs_as_pydantic_writes_them():
    schema = {"$defs": {"Item": {"type": "object", "required": ["sku", "tags"], "properties": {
        "sku": {"type": "string"}, "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}}}},
        "Tag": {"enum": ["new", "old"]}},
        "type": "object", "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}}}
    assert instance_for(schema) == {"items": [{"sku": "fake", "tags": ["new"]}]}


def test_instance_for_ends_a_schema_that_requires_itself_forever():
    schema = {"$defs": {"Node": {"type": "object", "required": ["next"],
                                 "properties": {"next": {"$ref": "#/$defs/Node"}}}},
              "$ref": "#/$defs/Node"}
    value = instance_for(schema)
    depth = 0
    while isinstance(value, dict):
        value, depth = value["next"], depth + 1
    assert value is None and 10 < depth <= 40


@pytest.mark.parametrize("schema", [{"$ref": "#/nowhere"}, {"$ref": "other.json#/x"},
                                    {"type": 5}, {"properties": "x", "required": "a"},
                                    {"items": [1, 2]}, {"type": "string", "minLength": -1}])
def test_instance_for_never_raises_on_odd_schemas(schema):
    json.dumps(instance_for(schema))


def test_a_nested_schema_instance_validates():
    schema = {"type": "object", "required": ["shop", "items", "status"], "properties": {
        "shop": {"type": "object", "required": ["name"],
                 "properties": {"name": {"type": "string"}}},
        "items": {"type": "array", "minItems": 2, "items": {
            "type": "object", "required": ["qty"], "properties": {"qty": {"type": "integer",
                                                                          "minimum": 1}}}},
        "status": {"type": "string", "enum": ["open", "closed"]}}}
    value = instance_for(schema)
    assert validate(value, schema) == []
    assert value == {"shop": {"name": "fake"}, "items": [{"qty": 1}, {"qty": 1}],
                     "status": "open"}


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, hint", [
    ({"Retry-After": "7"}, "in 7s"), ({"retry-after-ms": "250"}, "in 250ms"),
    ({"retry-after-ms": "250", "Retry-After": "1"}, "in 250ms"),
    ({"llm_provider-retry-after": "60"}, "in 60s"),
    ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, "after Wed, 21 Oct 2026 07:28:00 GMT"),
    ({}, None), (None, None), ({"Retry-After": ""}, None),
])
def test_wait_hint_reads_the_wait_headers(headers, hint):
    assert wait_hint(headers) == hint


def test_a_429_message_names_the_scripted_wait_or_says_later():
    named = json.loads(error_body(429, model=MODEL, headers={"Retry-After": "2"}))["error"]
    assert named == {"message": "Rate limit reached for `m`. Please try again in 2s.",
                     "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    later = json.loads(error_body(429, model=MODEL))["error"]["message"]
    assert later == "Rate limit reached for `m`. Please try again later."


def test_error_body_keeps_a_given_message_and_falls_back_by_status_family():
    assert json.loads(error_body(400, "bad n"))["error"]["message"] == "bad n"
    assert json.loads(error_body(599))["error"]["type"] == "server_error"
    assert json.loads(error_body(451))["error"]["type"] == "invalid_request_error"
    missing = json.loads(unknown_model_body("x"))["error"]
    assert missing == {"message": "The model 'x' does not exist", "type": "invalid_request_error",
                       "param": "model", "code": "model_not_found"}


# -- what an unscripted answer follows -------------------------------------------------------------

@pytest.mark.parametrize("n, count", [(None, 1), (1, 1), (3, 3), (128, 128), (0, None),
                                      (129, None), (True, None), (2.0, None), ("2", None)])
def test_choice_count_accepts_ints_1_to_128_only(n, count):
    request = {} if n is None else {"n": n}
    assert choice_count(request) == count


def test_forced_tool_call_follows_tool_choice():
    tools = [{"type": "function", "function": {"name": "a"}},
             {"type": "function", "function": {"name": "b", "parameters": {
                 "type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}}}]
    assert forced_tool_call({"tools": tools, "tool_choice": "required"}) == {
        "function": {"name": "a", "arguments": {}}}
    named = {"type": "function", "function": {"name": "b"}}
    assert forced_tool_call({"tools": tools, "tool_choice": named}) == {
        "function": {"name": "b", "arguments": {"q": "fake"}}}
    for choice in ("auto", "none", None):
        assert forced_tool_call({"tools": tools, "tool_choice": choice}) is None
    assert forced_tool_call({"tool_choice": "required"}) is None  # no tools to call


def test_json_content_follows_response_format():
    assert json_content({"messages": MESSAGES}, MODEL) is None
    assert json_content({"response_format": {"type": "text"}}, MODEL) is None
    as_object = json.loads(json_content({"messages": MESSAGES,
                                         "response_format": {"type": "json_object"}}, MODEL))
    assert as_object == {"reply": "[fake:m] Reply to: hello there"}
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert json.loads(json_content({"response_format": fmt}, MODEL)) == {"n": 0}
    no_schema = {"type": "json_schema", "json_schema": {"name": "x"}}
    assert json.loads(json_content({"response_format": no_schema}, MODEL)) == {}


def test_scripted_content_wins_over_tool_choice_and_response_format():
    request = {"messages": MESSAGES, "tool_choice": "required", "response_format": {
        "type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]}
    answer = plan_answer(Reply(content="as scripted"), request, MODEL)
    assert (answer.content, answer.tool_calls, answer.finish_reason) == (
        "as scripted", None, "stop")
    forced = plan_answer(Reply(), request, MODEL)
    assert forced.content is None and forced.finish_reason == "tool_calls"
    assert forced.tool_calls[0]["function"] == {"name": "f", "arguments": "{}"}


def test_n_choices_repeat_the_answer_and_bill_n_completions():
    one = plan_answer(Reply(), {"messages": MESSAGES}, MODEL)
    three = plan_answer(Reply(), {"messages": MESSAGES, "n": 3}, MODEL)
    prompt = estimate_tokens(MESSAGES)
    completion = one.usage["completion_tokens"]
    assert three.usage == {"prompt_tokens": prompt, "completion_tokens": 3 * completion,
                           "total_tokens": prompt + 3 * completion}
    body = json.loads(completion_body(three, MODEL, "chatcmpl-1", 7))
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in body["choices"]}) == 1


# -- stream events --------------------------------------------------------------------------------

def test_stream_events_interleave_choices_and_end_with_usage_then_done():
    answer = Answer("a b", None, "stop", {"prompt_tokens": 1, "completion_tokens": 4,
                                          "total_tokens": 5}, ["a ", "b"], choices=2)
    stream = stream_events(answer, MODEL, "chatcmpl-1", 7, include_usage=True)
    events = events_of(stream)
    assert events[-1] is None
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 5
    chunks = events[:-2]
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in chunks)
    indexed = [(c["choices"][0]["index"], c["choices"][0]["delta"],
                c["choices"][0]["finish_reason"]) for c in chunks]
    assert indexed == [(0, {"role": "assistant", "content": ""}, None),
                       (1, {"role": "assistant", "content": ""}, None),
                       (0, {"content": "a "}, None), (1, {"content": "a "}, None),
                       (0, {"content": "b"}, None), (1, {"content": "b"}, None),
                       (0, {}, "stop"), (1, {}, "stop")]
    assert len(stream.deltas) == 4  # what cut_after counts


def test_stream_events_without_include_usage_carry_no_usage_field():
    answer = Answer("x", None, "stop", {"total_tokens": 1}, ["x"])
    events = events_of(stream_events(answer, MODEL, "chatcmpl-1", 7, include_usage=False))
    assert all("usage" not in e for e in events[:-1])


def test_streamed_tool_call_arguments_join_back_per_call():
    calls = [{"id": "c0", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
             {"id": "c1", "type": "function", "function": {"name": "g", "arguments": "{}"}}]
    events = events_of(stream_events(Answer(None, calls, "tool_calls", None, []), MODEL,
                                     "chatcmpl-1", 7, include_usage=False))
    pieces = [d for e in events[:-1] for d in e["choices"][0]["delta"].get("tool_calls", [])]
    joined = {}
    for piece in pieces:
        joined[piece["index"]] = joined.get(piece["index"], "") + piece["function"]["arguments"]
    assert joined == {0: '{"a":1}', 1: "{}"}
    assert [p["id"] for p in pieces if "id" in p] == ["c0", "c1"]
