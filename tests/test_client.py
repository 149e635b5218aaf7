"""Client behaviour against ``responses``: parsing, costs, configuration, errors, secrets."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
import responses

import llmroute
from llmroute.retry import RetryPolicy

BASE = "http://gateway.test/v1"
URL = BASE + "/chat/completions"
KEY = "sk-live-SECRET-abcdef123456"
MESSAGES = [{"role": "user", "content": "hello"}]


def completion(model="gpt-5.4", content="hi", usage=None, **message):
    return {"id": "c1", "model": model, "choices": [{"index": 0, "finish_reason": "stop",
            "message": dict({"role": "assistant", "content": content}, **message)}],
            "usage": usage if usage is not None else
            {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}


@pytest.fixture
def client(clock):
    with llmroute.Client(BASE, KEY, retry=RetryPolicy(jitter=0), clock=clock,
                         sleep=clock.sleep) as c:
        yield c


@responses.activate
def test_chat_returns_content_usage_and_exact_cost(client):
    responses.add(responses.POST, URL, json=completion(), headers={"x-request-id": "req-1"})
    result = client.chat("gpt-5.4", MESSAGES, temperature=0.2, max_tokens=10)
    assert result.content == "hi" and result.finish_reason == "stop"
    assert result.usage.prompt_tokens == 1000 and result.usage.total_tokens == 1500
    # 1000 × $15/M + 500 × $30/M
    assert result.cost_usd == Decimal("0.03")
    assert result.attempts == 1 and result.request_id == "req-1"
    assert result.latency_ms >= 0


@responses.activate
def test_client_options_are_not_sent_in_the_body(client):
    responses.add(responses.POST, URL, json=completion())
    client.chat("gpt-5.4", MESSAGES, deadline=5, timeout=3, idempotency_key="k1",
                extra_headers={"X-Trace": "t"}, top_p=0.9, stop=["END"])
    request = responses.calls[0].request
    body = json.loads(request.body)
    assert set(body) == {"model", "messages", "top_p", "stop"}
    assert request.headers["Idempotency-Key"] == "k1"
    assert request.headers["X-Trace"] == "t"
    assert request.headers["Authorization"] == "Bearer " + KEY


@responses.activate
def test_cached_tokens_are_billed_at_the_cached_price(clock):
    catalog = llmroute.Catalog([llmroute.ModelSpec(
        "m", input_usd_per_mtok=Decimal(10), output_usd_per_mtok=Decimal(20),
        cached_input_usd_per_mtok=Decimal(1))])
    responses.add(responses.POST, URL, json=completion("m", usage={
        "prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 40}}))
    result = llmroute.Client(BASE, KEY, catalog=catalog).chat("m", MESSAGES)
    # 200 × $10/M + 800 × $1/M + 100 × $20/M = 0.002 + 0.0008 + 0.002
    assert result.cost_usd == Decimal("0.0048")
    assert result.usage.cached_tokens == 800 and result.usage.reasoning_tokens == 40


@responses.activate
def test_unknown_model_costs_none_and_warns_once(client, caplog):
    responses.add(responses.POST, URL, json=completion("mystery-1"))
    responses.add(responses.POST, URL, json=completion("mystery-1"))
    with caplog.at_level(logging.WARNING, logger="llmroute"):
        first = client.chat("mystery-1", MESSAGES)
        second = client.chat("mystery-1", MESSAGES)
    assert first.cost_usd is None and second.cost_usd is None
    warnings = [r for r in caplog.records if "mystery-1" in r.getMessage()]
    assert len(warnings) == 1


@responses.activate
def test_tracker_totals_follow_the_results(clock):
    tracker = llmroute.CostTracker()
    responses.add(responses.POST, URL, json=completion())
    client = llmroute.Client(BASE, KEY, tracker=tracker)
    result = client.chat("gpt-5.4", MESSAGES)
    snap = tracker.snapshot()
    assert snap.total_cost_usd == result.cost_usd
    assert snap.by_model["gpt-5.4"].prompt_tokens == 1000


def test_missing_key_is_a_config_error_naming_the_variables():
    with pytest.raises(llmroute.ConfigError) as info:
        llmroute.Client(BASE)
    assert "LLMROUTE_API_KEY" in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_environment_is_read_when_arguments_are_missing(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://fallback.test/v1")
    monkeypatch.setenv("LLMROUTE_API_KEY", KEY)
    client = llmroute.Client()
    assert client.base_url == "http://fallback.test/v1"
    monkeypatch.setenv("LLMROUTE_BASE_URL", "http://primary.test/v1/")
    assert llmroute.Client().base_url == "http://primary.test/v1"


@pytest.mark.parametrize("timeout", [None, 0, -1, (1, None), float("inf"), (1, 2, 3)])
def test_timeouts_must_be_finite(timeout):
    with pytest.raises(ValueError):
        llmroute.Client(BASE, KEY, timeout=timeout)


@pytest.mark.parametrize("model, messages", [("", MESSAGES), ("m", []), ("m", "hello"),
                                             ("m", ["hello"])])
def test_bad_call_arguments_raise_value_error(client, model, messages):
    with pytest.raises(ValueError):
        client.chat(model, messages)


@pytest.mark.parametrize("status, body, cls", [
    (400, {"error": {"message": "This model's maximum context length is 200000 tokens",
                     "code": "context_length_exceeded"}}, llmroute.ContextLengthExceededError),
    (400, {"error": {"message": "bad temperature"}}, llmroute.BadRequestError),
    (401, {"error": {"message": "Invalid API key provided"}}, llmroute.AuthenticationError),
    (403, {"error": {"message": "no"}}, llmroute.PermissionDeniedError),
    (404, {"error": {"message": "model not found"}}, llmroute.ModelNotFoundError),
    (404, {"error": {"message": "Not Found"}}, llmroute.NotFoundError),
    (422, {"error": {"message": "bad"}}, llmroute.UnprocessableEntityError),
])
@responses.activate
def test_status_maps_to_its_error_class(client, status, body, cls):
    responses.add(responses.POST, URL, status=status, json=body,
                  headers={"x-request-id": "r-9"})
    with pytest.raises(cls) as info:
        client.chat("gpt-5.4", MESSAGES)
    error = info.value
    assert type(error) is cls and error.status_code == status and error.request_id == "r-9"
    assert len(responses.calls) == 1


@pytest.mark.parametrize("body", ["<html>oops</html>", json.dumps({"choices": []}),
                                  json.dumps({"error": {"message": "upstream failed"}}),
                                  json.dumps([1, 2])])
@responses.activate
def test_a_2xx_without_the_expected_json_is_invalid_response(client, body):
    responses.add(responses.POST, URL, body=body, status=200)
    with pytest.raises(llmroute.InvalidResponseError):
        client.chat("gpt-5.4", MESSAGES)


@responses.activate
def test_the_key_never_leaks_even_when_the_server_echoes_it(clock, caplog):
    echo = {"error": {"message": "Invalid API key provided: %s" % KEY}}
    responses.add(responses.POST, URL, status=401, json=echo)
    responses.add(responses.POST, URL, status=503, json=echo)
    responses.add(responses.POST, URL, json=completion(content="fine"))
    client = llmroute.Client(BASE, KEY, retry=RetryPolicy(jitter=0), clock=clock,
                             sleep=clock.sleep)
    with caplog.at_level(logging.DEBUG, logger="llmroute"):
        with pytest.raises(llmroute.AuthenticationError) as info:
            client.chat("gpt-5.4", MESSAGES)
        result = client.chat("gpt-5.4", MESSAGES)
    error = info.value
    texts = [str(client), repr(client), str(error), repr(error), error.body,
             repr(error.__cause__), str(error.__context__), repr(result), str(result),
             repr(error.headers)]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "DEBUG logging should have produced lines"
    for text in texts:
        assert KEY not in text
        assert "abcdef123456" not in text


def test_proxies_and_ca_bundle_are_read_once_from_the_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/custom.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = llmroute.Client("https://gateway.test/v1", KEY)
    assert client.transport.proxies.get("https") == "http://proxy.test:3128"
    assert client.transport.verify == "/etc/ssl/custom.pem"
    monkeypatch.setenv("NO_PROXY", "gateway.test")
    assert "https" not in llmroute.Client("https://gateway.test/v1", KEY).transport.proxies


@responses.activate
def test_pool_grows_on_demand_and_keeps_working(client):
    responses.add(responses.POST, URL, json=completion())
    client.ensure_pool(64)
    assert client.pool_maxsize == 64 and client.transport.adapter._pool_maxsize == 64
    assert client.chat("gpt-5.4", MESSAGES).content == "hi"


def test_adapter_never_retries_on_its_own(client):
    retries = client.transport.adapter.max_retries
    assert retries.total == 0 and retries.connect == 0 and retries.read == 0


@responses.activate
def test_undecodable_tool_arguments_keep_the_billed_result_on_the_error(client):
    responses.add(responses.POST, URL, json=completion(content=None, tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]))
    with pytest.raises(llmroute.ToolCallError) as info:
        client.chat("gpt-5.4", MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}])
    assert info.value.raw == "{oops" and info.value.result.cost_usd == Decimal("0.03")
