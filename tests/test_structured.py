"""chat_json against the FakeGateway: strict parsing, repair turns that name the errors, totals."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

import llmroute
from llmroute.results import ChatResult, Usage
from llmroute.retry import RetryPolicy
from llmroute.structured import complete_json, parse_reply, strip_fence
from llmroute.testing import Reply

KEY = "sk-structured-0123456789"
MESSAGES = [{"role": "user", "content": "List the items on the receipt as JSON."}]
ITEMS = {"type": "object", "required": ["items"], "properties": {"items": {
    "type": "array", "items": {"type": "object", "required": ["name", "price"], "properties": {
        "name": {"type": "string"}, "price": {"type": "number"}}}}}}
PROSE_AROUND_BROKEN = 'Sure! Here is the JSON: {"items": [{"name": "tea", "price": 2.5},]} Enjoy.'
SCHEMA_VIOLATION = '{"items": [{"name": "tea", "price": "2.50"}]}'
VALID_FENCED = '```json\n{"items": [{"name": "tea", "price": 2.5}]}\n```'


@pytest.fixture
def client(gw):
    with llmroute.Client(gw.base_url, KEY, retry=RetryPolicy(max_retries=0)) as c:
        yield c


# Parsing: one fence is stripped losslessly, nothing else is guessed ------------------------------
@pytest.mark.parametrize("text, body", [
    ('```json\n{"a": 1}\n```', '{"a": 1}'),
    ('```\n[1, 2]\n```', '[1, 2]'),
    ('  ```JSON\r\n{"a": 1}\r\n```  \n', '{"a": 1}'),
    ('```json\n{\n  "code": "```py\\nx = 1\\n```",\n  "tab":\t"a`b"\n}\n```',
     '{\n  "code": "```py\\nx = 1\\n```",\n  "tab":\t"a`b"\n}'),
    ('```json\n  {"a": 1}   \n```', '  {"a": 1}   '),
    ('{"a": 1}', '{"a": 1}'),
    # two blocks are not one fence: left alone, so the model is asked to fix it
    ('```json\n{"a": 1}\n```\nand\n```json\n{"b": 2}\n```',
     '```json\n{"a": 1}\n```\nand\n```json\n{"b": 2}\n```'),
    ('Here: ```json\n{"a": 1}\n```', 'Here: ```json\n{"a": 1}\n```'),
])
def test_a_single_fence_is_stripped_losslessly(text, body):
    assert strip_fence(text) == body


@pytest.mark.parametrize("text, message", [
    ('{"a": 1,}', "Expecting property name enclosed in double quotes at line 1 column 9 (char 8)"),
    ('[1, 2,]', "Expecting value at line 1 column 7 (char 6)"),
    ('Here you go: {"a": 1}', "Expecting value at line 1 column 1 (char 0)"),
    ('{"a": 1} Hope that helps!', "Extra data at line 1 column 10 (char 9)"),
    ('{"a": 1,\n "b": [1, 2', "Expecting ',' delimiter at line 2 column 12 (char 20)"),
    ('{"a": NaN}', "NaN is not valid JSON"),
    ('', "Expecting value at line 1 column 1 (char 0)"),
])
def test_trailing_commas_prose_and_truncation_are_not_guessed_at(text, message):
    with pytest.raises(ValueError) as info:
        parse_reply(text)
    assert str(info.value) == message


def test_fenced_json_parses_to_the_same_data_as_bare_json():
    body = '{"s": "line\\nbreak ```", "n": [1, 2.5, null, true]}'
    assert parse_reply("```json\n%s\n```" % body) == parse_reply(body) == json.loads(body)


# The repair loop against the gateway -----------------------------------------------------------
def test_two_repairs_turn_prose_and_a_schema_violation_into_data(gw, client):
    gw.script("gpt-5.4", PROSE_AROUND_BROKEN, SCHEMA_VIOLATION, VALID_FENCED)
    result = client.chat_json("gpt-5.4", MESSAGES, schema=ITEMS)
    assert result.data == {"items": [{"name": "tea", "price": 2.5}]}
    assert result.repairs == 2 and len(result.turns) == 3 and result.content == VALID_FENCED
    assert result.errors == (
        "not valid JSON: Expecting value at line 1 column 1 (char 0)",
        "does not match the schema: $.items[0].price: expected number, got string")
    second, third = gw.requests[1].json["messages"], gw.requests[2].json["messages"]
    assert second[:-2] == MESSAGES
    assert second[-2] == {"role": "assistant", "content": PROSE_AROUND_BROKEN}
    assert second[-1] == {"role": "user", "content": (
        "Your previous reply was not valid JSON: Expecting value at line 1 column 1 (char 0). "
        "Reply with only the corrected JSON object.")}
    assert third[:-2] == second
    assert third[-2] == {"role": "assistant", "content": SCHEMA_VIOLATION}
    assert third[-1]["role"] == "user"
    assert "- $.items[0].price: expected number, got string\n" in third[-1]["content"]


def test_when_repairs_run_out_the_error_holds_every_failure(gw, client):
    gw.script("gpt-5.4", PROSE_AROUND_BROKEN, SCHEMA_VIOLATION, VALID_FENCED)
    with pytest.raises(llmroute.StructuredOutputError) as info:
        client.chat_json("gpt-5.4", MESSAGES, schema=ITEMS, max_repairs=1)
    err = info.value
    assert err.content == SCHEMA_VIOLATION
    assert err.errors == ["not valid JSON: Expecting value at line 1 column 1 (char 0)",
                          "does not match the schema: $.items[0].price: expected number, got "
                          "string"]
    assert "$.items[0].price" in str(err)
    assert len(gw.requests) == 2


def test_zero_repairs_raises_after_one_request(gw, client):
    gw.script("gpt-5.4", '{"a": 1,}')
    with pytest.raises(llmroute.StructuredOutputError) as info:
        client.chat_json("gpt-5.4", MESSAGES, max_repairs=0)
    assert len(info.value.errors) == 1 and len(gw.requests) == 1


def test_totals_sum_every_turn(gw, client):
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    gw.script("gpt-5.4", Reply(content="{oops", usage=usage), Reply(content="{}", usage=usage))
    result = client.chat_json("gpt-5.4", MESSAGES)
    assert result.usage == Usage(200, 20, 220)
    # gpt-5.4 at $15 in / $30 out per million: 2 × (100 × 15 + 10 × 30) / 1e6
    assert result.cost_usd == Decimal("0.0036")
    assert result.attempts == 2 and result.model == "gpt-5.4"
    assert result.latency_ms == pytest.approx(sum(t.latency_ms for t in result.turns))


def test_a_turn_without_usage_is_estimated_and_the_total_says_so(gw, client):
    gw.script("gpt-5.4", Reply(content="{oops", usage=False), Reply(content="{}"))
    result = client.chat_json("gpt-5.4", MESSAGES)
    assert result.turns[0].cost_estimated and not result.turns[1].cost_estimated
    assert result.cost_estimated and result.data == {}
    assert result.usage.total_tokens > 0 and result.cost_usd > 0


def test_truncation_at_max_tokens_is_named_in_the_repair(gw, client):
    long_object = json.dumps({"words": ["w%d" % i for i in range(50)]})
    gw.script("gpt-5.4", long_object, '{"words": []}')
    result = client.chat_json("gpt-5.4", MESSAGES, max_tokens=10)
    assert result.turns[0].finish_reason == "length" and result.repairs == 1
    assert result.errors[0].startswith("truncated at max_tokens (finish_reason 'length'): ")
    repair = gw.requests[1].json["messages"][-1]["content"]
    assert repair.startswith("Your previous reply was cut off at max_tokens")
    assert gw.requests[1].json["max_tokens"] == 10


# What is sent ---------------------------------------------------------------------------------
def test_a_model_with_schema_mode_gets_the_schema_natively(gw, client):
    gw.script("gpt-5.4", VALID_FENCED)
    client.chat_json("gpt-5.4", MESSAGES, schema=ITEMS)
    sent = gw.requests[0].json
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "response", "schema": ITEMS, "strict": False}}
    assert sent["messages"] == MESSAGES


def test_a_model_without_schema_mode_gets_json_mode_and_the_schema_in_a_system_line(gw, client):
    gw.script("claude-sonnet-4.5", VALID_FENCED)
    system = {"role": "system", "content": "You read receipts."}
    client.chat_json("claude-sonnet-4.5", [system] + MESSAGES, schema=ITEMS)
    sent = gw.requests[0].json
    assert sent["response_format"] == {"type": "json_object"}
    first, hint, user = sent["messages"]
    assert first == system and user == MESSAGES[0] and hint["role"] == "system"
    assert json.dumps(ITEMS, separators=(",", ":")) in hint["content"]


def test_json_mode_without_the_word_json_in_the_messages_adds_it(gw, client):
    # OpenAI rejects json_object mode unless a message mentions JSON.
    gw.script("gpt-5.4", "{}", "{}")
    client.chat_json("gpt-5.4", [{"role": "user", "content": "List the items."}])
    client.chat_json("gpt-5.4", MESSAGES)
    asked, mentioned = gw.requests[0].json["messages"], gw.requests[1].json["messages"]
    assert asked[0]["role"] == "system" and "JSON object" in asked[0]["content"]
    assert mentioned == MESSAGES


def test_the_callers_response_format_wins(gw, client):
    gw.script("gpt-5.4", "[1]")
    fmt = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array"}}}
    result = client.chat_json("gpt-5.4", MESSAGES, schema={"type": "array"}, response_format=fmt,
                              temperature=0)
    assert result.data == [1]
    assert gw.requests[0].json["response_format"] == fmt
    assert gw.requests[0].json["temperature"] == 0


def test_an_array_schema_on_a_model_without_schema_mode_is_asked_for_in_the_prompt(gw, client):
    # JSON mode forces an object, so it is not sent when the schema wants an array.
    gw.script("claude-sonnet-4.5", "[1, 2]")
    result = client.chat_json("claude-sonnet-4.5", MESSAGES,
                              schema={"type": "array", "items": {"type": "integer"}})
    sent = gw.requests[0].json
    assert result.data == [1, 2] and "response_format" not in sent
    assert "Reply with only a JSON array" in sent["messages"][0]["content"]


def test_a_bad_schema_is_refused_before_any_request(gw, client):
    with pytest.raises(ValueError, match="unknown type 'float'"):
        client.chat_json("gpt-5.4", MESSAGES, schema={"properties": {"p": {"type": "float"}}})
    with pytest.raises(ValueError, match="max_repairs"):
        client.chat_json("gpt-5.4", MESSAGES, max_repairs=-1)
    with pytest.raises(ValueError, match="messages must be a non-empty list"):
        client.chat_json("gpt-5.4", "List the items as JSON.")
    assert gw.requests == []


def test_http_errors_are_raised_not_repaired(gw, client):
    gw.script("gpt-5.4", Reply(status=400))
    with pytest.raises(llmroute.BadRequestError):
        client.chat_json("gpt-5.4", MESSAGES)
    assert len(gw.requests) == 1


# Through a router --------------------------------------------------------------------------------
class _Router:
    """The part of Router that complete_json uses: complete() with routing options."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def complete(self, prompt_or_messages, **kw):
        self.calls.append((list(prompt_or_messages), kw))
        return ChatResult(content=self.replies.pop(0), model="gpt-4.1", finish_reason="stop",
                          usage=Usage(10, 5, 15), cost_usd=Decimal("0.001"), latency_ms=2.0)


def test_complete_json_routes_as_extraction_and_repairs_through_the_same_route():
    router = _Router(['{"name": 1}', '{"name": "Ada"}'])
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    result = complete_json(router, "Extract the name: Ada", schema=schema, priority="budget")
    assert result.data == {"name": "Ada"} and result.repairs == 1
    assert result.cost_usd == Decimal("0.002") and result.usage == Usage(20, 10, 30)
    (first, kw1), (second, kw2) = router.calls
    assert kw1 == kw2 == {"task": "extraction", "priority": "budget",
                          "response_format": {"type": "json_object"}}
    assert first[0]["role"] == "system" and '"name"' in first[0]["content"]
    assert first[1] == {"role": "user", "content": "Extract the name: Ada"}
    assert second[:2] == first and second[2]["content"] == '{"name": 1}'
    assert "$.name: expected string, got integer" in second[3]["content"]


def test_complete_json_lifts_the_routes_json_mode_for_an_array_schema():
    router = _Router(["[1]"])
    result = complete_json(router, [{"role": "user", "content": "Numbers?"}],
                           schema={"type": "array"}, task="general")
    assert result.data == [1]
    assert router.calls[0][1] == {"task": "general", "response_format": None}


def test_router_complete_json_routes_to_the_best_json_model_and_repairs(gw):
    gw.script("claude-opus-4.6", Reply(content=PROSE_AROUND_BROKEN), Reply(content=VALID_FENCED))
    with llmroute.Client(gw.base_url, KEY, retry=RetryPolicy(max_retries=0)) as c:
        result = llmroute.Router(c).complete_json(
            "Extract every item and its price from the receipt as JSON: tea 2.50")
    assert result.data == {"items": [{"name": "tea", "price": 2.5}]}
    assert result.repairs == 1
    assert {r.model for r in gw.requests} == {"claude-opus-4.6"}
