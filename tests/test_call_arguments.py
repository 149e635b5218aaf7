"""Bad arguments of chat, stream, chat_json and run_tools fail at once, naming the argument."""
from __future__ import annotations

import pytest

import llmroute

KEY = "sk-test-arguments-0000"
MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def client(gw):
    with llmroute.Client(gw.base_url, KEY) as c:
        yield c


@pytest.mark.parametrize("param,value", [
    ("temperature", float("nan")), ("top_p", float("inf")),
    ("logit_bias", {"42": float("-inf")}), ("metadata", {"a": [1, float("nan")]})])
@pytest.mark.parametrize("call", ["chat", "stream", "chat_json"])
def test_nan_or_infinity_in_params_is_refused_naming_the_param(gw, client, call, param, value):
    with pytest.raises(ValueError, match=param):
        getattr(client, call)("gpt-5.4", MESSAGES, **{param: value})
    assert not gw.requests


def test_other_openai_params_pass_through_unchecked(gw, client):
    client.chat("gpt-5.4", MESSAGES, temperature=0.2, seed=7, vendor_option={"x": [1, "y"]})
    sent = gw.requests[-1].json
    assert sent["vendor_option"] == {"x": [1, "y"]} and sent["seed"] == 7


@pytest.mark.parametrize("kwargs,name", [
    ({"timeout": True}, "timeout"), ({"timeout": "5"}, "timeout"),
    ({"timeout": (1, None)}, "timeout"), ({"deadline": "2"}, "deadline"),
    ({"idempotency_key": 5}, "idempotency_key"), ({"extra_headers": ["x"]}, "extra_headers")])
@pytest.mark.parametrize("call", ["chat", "stream"])
def test_client_options_are_checked_before_any_request(gw, client, call, kwargs, name):
    with pytest.raises(ValueError, match=name):
        getattr(client, call)("gpt-5.4", MESSAGES, **kwargs)
    assert not gw.requests


@pytest.mark.parametrize("messages", [[], "hello", [{"content": "no role"}], [None]])
def test_chat_json_refuses_bad_messages_before_any_request(gw, client, messages):
    with pytest.raises(ValueError, match="messages"):
        client.chat_json("gpt-5.4", messages)
    assert not gw.requests


def test_run_tools_refuses_bad_arguments_before_any_request(gw, client):
    def ping() -> str:
        return "pong"

    for kwargs, name in [({"messages": []}, "messages"), ({"model": ""}, "model"),
                         ({"tools": "ping"}, "tools"), ({"max_rounds": True}, "max_rounds")]:
        args = dict(model="gpt-5.4", messages=MESSAGES)
        args.update(kwargs)
        with pytest.raises(ValueError, match=name):
            llmroute.run_tools(client, args.pop("model"), args.pop("messages"),
                               {"ping": ping}, **args)
    assert not gw.requests


@pytest.mark.parametrize("kwargs,name", [
    ({"pool_maxsize": True}, "pool_maxsize"), ({"timeout": float("nan")}, "timeout"),
    ({"retry": "fast"}, "retry"), ({"default_headers": {"X-A": 1}}, "default_headers")])
def test_client_constructor_arguments_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        llmroute.Client("http://127.0.0.1:9/v1", KEY, **kwargs)


def test_stream_options_must_be_a_dict(gw, client):
    with pytest.raises(ValueError, match="stream_options"):
        client.stream("gpt-5.4", MESSAGES, stream_options=True)
