"""The same script against the real ``openai`` SDK and against ``llmroute.compat``, field by field.

Both point at the FakeGateway with one scripted reply each; ``model_dump(exclude_none=True)`` of
what they return must match except ``id``, ``created`` and ``system_fingerprint``, they must send
the same request body, and they must raise the same errors with the same attributes.
"""
from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")

import llmroute  # noqa: E402
from llmroute import compat  # noqa: E402
from llmroute.testing import Reply  # noqa: E402

KEY = "sk-test-compat-0123456789"
MODEL = "gpt-5.4"
MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the team"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
#: Fields that differ per call by design.
UNCOMPARED = ("id", "created", "system_fingerprint")


def _comparable(dump):
    return {k: v for k, v in dump.items() if k not in UNCOMPARED}


def _clients(gw):
    """(name, client) for openai and the shim, configured alike."""
    return [("openai", openai.OpenAI(base_url=gw.base_url, api_key=KEY)),
            ("shim", compat.OpenAI(base_url=gw.base_url, api_key=KEY))]


def _each(gw, reply, call):
    """Script ``reply`` and run ``call(client)`` once per SDK; {name: (outcome, request body)}."""
    outcomes = {}
    for name, client in _clients(gw):
        gw.reset()
        gw.script(MODEL, *(reply if isinstance(reply, tuple) else (reply,)))
        try:
            outcome = call(client)
        finally:
            client.close()
        outcomes[name] = (outcome, [r.json for r in gw.requests],
                          [r.answered_status for r in gw.requests])
    return outcomes


def _assert_same_completion(outcomes):
    (theirs, their_bodies, their_statuses) = outcomes["openai"]
    (ours, our_bodies, our_statuses) = outcomes["shim"]
    assert _comparable(ours.model_dump(exclude_none=True)) == \
        _comparable(theirs.model_dump(exclude_none=True))
    assert our_bodies == their_bodies
    assert our_statuses == their_statuses
    return theirs, ours


def test_plain_completion_matches_openai(gw):
    outcomes = _each(gw, Reply(content="Hello, team!"), lambda c: c.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=50))
    theirs, ours = _assert_same_completion(outcomes)
    assert ours.choices[0].message.content == theirs.choices[0].message.content == "Hello, team!"
    assert ours.choices[0].finish_reason == theirs.choices[0].finish_reason == "stop"
    assert ours.usage.prompt_tokens == theirs.usage.prompt_tokens > 0
    assert ours.model == theirs.model == MODEL
    assert ours.id.startswith("chatcmpl-") and theirs.id.startswith("chatcmpl-")
    assert ours.choices[0].message.tool_calls is theirs.choices[0].message.tool_calls is None
    assert ours.model_dump().keys() == theirs.model_dump().keys()
    assert ours.llmroute.attempts == 1 and ours.llmroute.cost_usd is not None


def test_tool_calls_match_openai(gw):
    reply = Reply(tool_calls=[{"function": {"name": "get_weather",
                                            "arguments": {"city": "Seoul"}}}])
    outcomes = _each(gw, reply, lambda c: c.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="auto"))
    theirs, ours = _assert_same_completion(outcomes)
    call = ours.choices[0].message.tool_calls[0]
    assert call.function.name == theirs.choices[0].message.tool_calls[0].function.name
    assert call.function.arguments == theirs.choices[0].message.tool_calls[0].function.arguments
    assert json.loads(call.function.arguments) == {"city": "Seoul"}
    assert ours.choices[0].finish_reason == "tool_calls"


def test_json_response_format_matches_openai(gw):
    content = '{"name": "Ada", "languages": ["en", "fr"]}'
    outcomes = _each(gw, Reply(content=content), lambda c: c.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format={"type": "json_object"}))
    theirs, ours = _assert_same_completion(outcomes)
    assert json.loads(ours.choices[0].message.content) == {"name": "Ada",
                                                           "languages": ["en", "fr"]}
    assert outcomes["shim"][1][0]["response_format"] == {"type": "json_object"}


def test_stream_with_usage_matches_openai(gw):
    def run(client):
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True})
        with stream:
            return [chunk.model_dump(exclude_none=True) for chunk in stream]

    outcomes = _each(gw, Reply(stream_chunks=["Hel", "lo, ", "team", "!"]), run)
    theirs, their_bodies, _ = outcomes["openai"]
    ours, our_bodies, _ = outcomes["shim"]
    assert [_comparable(c) for c in ours] == [_comparable(c) for c in theirs]
    assert our_bodies == their_bodies
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in ours if c["choices"])
    assert text == "Hello, team!"
    assert ours[-1]["choices"] == [] and ours[-1]["usage"]["total_tokens"] > 0


def test_stream_without_stream_options_has_no_usage_chunk_like_openai(gw):
    def run(client):
        return [chunk.model_dump(exclude_none=True) for chunk in client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True)]

    outcomes = _each(gw, Reply(stream_chunks=["a ", "b"]), run)
    theirs, ours = outcomes["openai"][0], outcomes["shim"][0]
    assert [_comparable(c) for c in ours] == [_comparable(c) for c in theirs]
    assert all(c["choices"] for c in ours)
    # llmroute still asked for the usage (its cost depends on it), and did not show it.
    assert outcomes["shim"][1][0]["stream_options"] == {"include_usage": True}


def test_429_is_retried_like_openai(gw):
    replies = (Reply(status=429, headers={"retry-after-ms": "20"}), Reply(content="after a wait"))
    outcomes = _each(gw, replies, lambda c: c.chat.completions.create(
        model=MODEL, messages=MESSAGES))
    theirs, ours = _assert_same_completion(outcomes)
    assert outcomes["shim"][2] == [429, 200]
    assert ours.choices[0].message.content == "after a wait"
    assert ours.llmroute.attempts == 2


def test_401_raises_authentication_error_like_openai(gw):
    def run(client):
        with pytest.raises(Exception) as info:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return info.value

    outcomes = _each(gw, Reply(status=401), run)
    theirs, ours = outcomes["openai"][0], outcomes["shim"][0]
    assert isinstance(theirs, openai.AuthenticationError)
    assert isinstance(ours, compat.AuthenticationError)
    assert isinstance(ours, compat.APIStatusError) and isinstance(ours, compat.APIError)
    assert isinstance(ours, llmroute.AuthenticationError)
    assert ours.status_code == theirs.status_code == 401
    assert ours.message == theirs.message
    assert str(ours) == str(theirs)
    assert ours.body == theirs.body and isinstance(ours.body, dict)
    assert (ours.code, ours.type, ours.param) == (theirs.code, theirs.type, theirs.param)
    assert ours.request_id.startswith("req_fake_") and theirs.request_id.startswith("req_fake_")
    assert outcomes["shim"][2] == outcomes["openai"][2] == [401]
    for text in (str(ours), repr(ours), json.dumps(ours.body)):
        assert KEY not in text


def test_404_and_500_map_to_the_same_classes_as_openai(gw):
    for status, name in ((404, "NotFoundError"), (500, "InternalServerError"),
                         (400, "BadRequestError"), (422, "UnprocessableEntityError")):
        def run(client):
            with pytest.raises(Exception) as info:
                client.with_options(max_retries=0).chat.completions.create(
                    model=MODEL, messages=MESSAGES)
            return info.value

        outcomes = _each(gw, Reply(status=status), run)
        theirs, ours = outcomes["openai"][0], outcomes["shim"][0]
        assert isinstance(theirs, getattr(openai, name))
        assert isinstance(ours, getattr(compat, name)) and isinstance(ours, getattr(llmroute, name))
        assert (ours.status_code, ours.message, ours.body) == \
            (theirs.status_code, theirs.message, theirs.body)


def test_explicit_stream_false_and_n_choices_match_openai(gw):
    outcomes = _each(gw, Reply(content="whole"), lambda c: c.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=False, seed=7, n=2))
    theirs, ours = _assert_same_completion(outcomes)
    assert outcomes["shim"][1][0]["stream"] is False
    assert len(ours.choices) == len(theirs.choices) == 2
    assert [c.index for c in ours.choices] == [0, 1]
