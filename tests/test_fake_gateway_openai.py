"""The real ``openai`` SDK against FakeGateway: what it parses, retries and raises.

Skipped when ``openai`` is not installed (it is an optional peer, never a dependency).
"""
from __future__ import annotations

import json
from typing import List, Optional

import pytest

from llmroute.schema import validate
from llmroute.testing import FakeGateway, Reply

openai = pytest.importorskip("openai")

MODEL = "gpt-5.4"
KEY = "sk-fake-openai-0123456789"
MESSAGES = [{"role": "user", "content": "What is the weather in Oslo? Answer in JSON."}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "required": ["city", "unit", "days"], "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "detail": {"type": "boolean"}}}}}
RECEIPT = {"type": "object", "additionalProperties": False,
           "required": ["shop", "total", "paid", "items", "status"],
           "properties": {
               "shop": {"type": "object", "required": ["name", "city"], "properties": {
                   "name": {"type": "string"}, "city": {"type": ["string", "null"]}}},
               "total": {"type": "number", "exclusiveMinimum": 0},
               "paid": {"type": "boolean"},
               "items": {"type": "array", "minItems": 2, "items": {
                   "type": "object", "required": ["sku", "qty"], "properties": {
                       "sku": {"type": "string", "maxLength": 3},
                       "qty": {"type": "integer", "minimum": 1}}}},
               "status": {"enum": ["open", "closed"]},
               "note": {"type": "string"}}}


@pytest.fixture(scope="module")
def server():
    with FakeGateway(api_key=KEY) as gw:
        yield gw


@pytest.fixture
def gw(server):
    server.reset()
    yield server


def make_client(gw, key=KEY, max_retries=0):
    # trust_env=False: never route 127.0.0.1 through a developer's proxy.
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=max_retries,
                         timeout=5, http_client=openai.DefaultHttpxClient(trust_env=False))


@pytest.fixture
def client(gw):
    with make_client(gw) as c:
        yield c


def test_plain_completion_parses_with_content_usage_and_request_id(gw, client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    completion = raw.parse()
    assert raw.headers["date"].endswith(" GMT")
    assert raw.headers["x-request-id"] == gw.requests[0].request_id
    assert completion.object == "chat.completion" and completion.model == MODEL
    (choice,) = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("[fake:gpt-5.4] Reply to: What is the weather")
    assert completion.usage.total_tokens == (completion.usage.prompt_tokens
                                             + completion.usage.completion_tokens)


def test_the_recorded_request_redacts_the_key_but_still_matches_it(gw, client):
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    (record,) = gw.requests
    assert record.header("Authorization") == "Bearer [REDACTED]"
    assert record.bearer_matches(KEY) and not record.bearer_matches(KEY + "x")
    assert record.header("x-stainless-retry-count") == "0"
    assert KEY not in repr(record) and KEY not in repr(gw)


def test_required_tool_choice_returns_a_call_with_arguments_valid_for_the_tool(gw, client):
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                tools=[WEATHER_TOOL], tool_choice="required")
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert validate(arguments, WEATHER_TOOL["function"]["parameters"]) == []
    assert set(arguments) == {"city", "unit", "days"}  # required keys only
    assert arguments["unit"] == "celsius" and 1 <= arguments["days"] <= 7


def test_a_named_tool_choice_calls_that_tool(gw, client):
    other = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert validate(json.loads(call.function.arguments),
                    WEATHER_TOOL["function"]["parameters"]) == []


def test_auto_tool_choice_still_answers_text(gw, client):
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                tools=[WEATHER_TOOL])
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content.startswith("[fake:")


def test_json_object_mode_answers_a_json_object(gw, client):
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                response_format={"type": "json_object"})
    data = json.loads(completion.choices[0].message.content)
    assert isinstance(data, dict) and data["reply"].startswith("[fake:gpt-5.4]")


def test_json_schema_mode_answers_an_instance_of_the_schema(gw, client):
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "receipt", "schema": RECEIPT, "strict": True}})
    data = json.loads(completion.choices[0].message.content)
    assert validate(data, RECEIPT) == []
    assert set(data) == set(RECEIPT["required"]) and len(data["items"]) == 2


def test_openai_parse_with_a_pydantic_model_gets_a_valid_instance(gw, client):
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):
        sku: str
        qty: int

    class Receipt(pydantic.BaseModel):
        shop: str
        items: List[Item]
        note: Optional[str]

    completion = client.chat.completions.parse(model=MODEL, messages=MESSAGES,
                                               response_format=Receipt)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Receipt) and isinstance(parsed.items[0], Item)
    sent = gw.requests[0].json["response_format"]
    assert sent["type"] == "json_schema" and "$defs" in sent["json_schema"]["schema"]


def test_n_2_returns_two_indexed_choices_and_bills_both(gw, client):
    one = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    two = client.chat.completions.create(model=MODEL, messages=MESSAGES, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].message.content == two.choices[1].message.content
    assert two.usage.completion_tokens == 2 * one.usage.completion_tokens


def test_a_stream_with_usage_parses_into_the_same_text_and_usage(gw, client):
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_a_stream_with_n_2_interleaves_indexed_choices(gw, client):
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, n=2):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts[0] == texts[1] and texts[0].startswith("[fake:gpt-5.4]")
    assert finishes == {0: "stop", 1: "stop"}


def test_a_streamed_tool_call_is_assembled_by_the_streaming_helper(gw, client):
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL],
                                        tool_choice="required") as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert validate(json.loads(call.function.arguments),
                    WEATHER_TOOL["function"]["parameters"]) == []


def test_models_retrieve_and_an_unknown_model_raising_not_found(gw, client):
    gw.script(MODEL, Reply())
    assert [m.id for m in client.models.list()] == [MODEL]
    model = client.models.retrieve(MODEL)
    assert (model.id, model.object) == (MODEL, "model")
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found" and "no-such-model" in info.value.message


def test_a_scripted_429_is_retried_by_openai_after_the_scripted_wait(gw):
    gw.script(MODEL, Reply(status=429, headers={"retry-after-ms": "20"}), "after the wait")
    with make_client(gw, max_retries=2) as client:
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == "after the wait"
    assert [r.answered_status for r in gw.requests] == [429, 200]
    assert [r.header("x-stainless-retry-count") for r in gw.requests] == ["0", "1"]


def test_a_429_that_is_not_retried_names_the_scripted_wait(gw, client):
    gw.script(MODEL, Reply(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert "try again in 7s" in info.value.message
    assert info.value.code == "rate_limit_exceeded"


def test_a_wrong_key_raises_authentication_error_without_the_key(gw):
    with make_client(gw, key="sk-wrong-key-999") as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    (record,) = gw.requests
    assert record.answered_status == 401 and not record.bearer_matches(KEY)
    assert "sk-wrong-key-999" not in repr(record)
