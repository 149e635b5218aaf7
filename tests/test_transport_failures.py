"""Broken 2xx bodies, wrong shapes and odd usage: typed errors only, the right reaction to each."""
from __future__ import annotations

from decimal import Decimal

import pytest

import llmroute
from _servers import chunk, completion, gzip_bytes, head, respond

KEY = "sk-test-transport-0000"
MESSAGES = [{"role": "user", "content": "Say hello."}]
FAST = llmroute.RetryPolicy(max_retries=2, initial_delay=0.01, jitter=0)


def client_for(server, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", (2, 2))
    return llmroute.Client(server.base_url, KEY, **kw)


def first_broken_then_ok(broken):
    """A handler whose first answer is ``broken(conn)`` and every later one a good completion."""
    def handler(conn, request, server):
        if len(server.requests) == 1:
            broken(conn)
        else:
            respond(conn, completion("recovered"))
    return handler


def short_content_length(conn):
    body = completion()
    conn.sendall(head(200, ["Connection: close"], len(body)) + body[: len(body) // 2])


def chunked_that_stops(conn):
    body = completion()
    conn.sendall(head(200, ["Transfer-Encoding: chunked", "Connection: close"])
                 + chunk(body[:20]))


def corrupt_gzip(conn):
    body = gzip_bytes(completion())
    body = body[:10] + b"\x00garbage-not-deflate" + body[30:]
    conn.sendall(head(200, ["Content-Encoding: gzip", "Connection: close"], len(body)) + body)


BROKEN_BODIES = [short_content_length, chunked_that_stops, corrupt_gzip]


@pytest.mark.parametrize("broken", BROKEN_BODIES, ids=lambda f: f.__name__)
def test_a_broken_2xx_body_is_retried_as_a_failure_after_sending(serve, broken):
    server = serve(first_broken_then_ok(broken))
    tracker = llmroute.CostTracker()
    with client_for(server, tracker=tracker) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert result.content == "recovered" and result.attempts == 2
    first = result.attempt_log[0]
    assert first.number == 1 and first.status is None and first.error == "APIConnectionError"
    assert result.attempt_log[1].status == 200


@pytest.mark.parametrize("broken", BROKEN_BODIES, ids=lambda f: f.__name__)
def test_a_broken_2xx_body_raises_a_typed_error_counted_by_the_tracker(serve, broken):
    server = serve(lambda conn, request, srv: broken(conn))
    tracker = llmroute.CostTracker()
    policy = llmroute.RetryPolicy(max_retries=3, retry_sent_errors=False)
    with client_for(server, tracker=tracker, retry=policy) as client:
        with pytest.raises(llmroute.APIConnectionError) as info:
            client.chat("gpt-5.4", MESSAGES)
    error = info.value
    assert error.request_sent is True and len(server.requests) == 1
    assert error.__cause__ is None and error.__context__ is None
    assert [a.error for a in error.attempt_log] == ["APIConnectionError"]
    assert tracker.snapshot().by_model["gpt-5.4"].errors == 1


def test_a_gzip_body_is_decoded(serve):
    body = gzip_bytes(completion("zipped"))
    server = serve(lambda conn, request, srv: conn.sendall(
        head(200, ["Content-Encoding: gzip", "Connection: close"], len(body)) + body))
    with client_for(server) as client:
        assert client.chat("gpt-5.4", MESSAGES).content == "zipped"


@pytest.mark.parametrize("body", [
    {"choices": []},
    {"choices": {"0": {}}},
    {"choices": [{"message": "hello"}]},
    {"choices": [{"message": {"content": "x", "tool_calls": {"id": "c"}}}]},
    {"choices": [{"message": {"content": None, "tool_calls": [None]}}]},
    {"choices": [{"message": {"content": 42}}]},
], ids=["no-choices", "choices-object", "message-string", "tool-calls-object",
        "tool-calls-null", "content-number"])
def test_a_complete_2xx_of_the_wrong_shape_is_refused_and_not_retried(serve, body):
    import json

    data = json.dumps(body).encode()
    server = serve(lambda conn, request, srv: respond(conn, data))
    tracker = llmroute.CostTracker()
    with client_for(server, tracker=tracker) as client:
        with pytest.raises(llmroute.InvalidResponseError) as info:
            client.chat("gpt-5.4", MESSAGES)
    assert len(server.requests) == 1 and info.value.request_sent is True
    assert len(info.value.attempt_log) == 1
    assert tracker.snapshot().by_model["gpt-5.4"].errors == 1


def test_content_given_as_parts_is_joined(serve):
    import json

    data = json.dumps({"choices": [{"message": {"content": [
        {"type": "text", "text": "Hello, "}, {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "world"}]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
    server = serve(lambda conn, request, srv: respond(conn, data))
    with client_for(server) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert result.content == "Hello, world" and not result.cost_estimated


@pytest.mark.parametrize("prompt,completion_tokens", [(1000.0, 50.0), ("1000", "50"),
                                                      (1000, "50")])
def test_usage_counts_given_as_exact_floats_or_strings_are_accepted(serve, prompt,
                                                                    completion_tokens):
    data = completion(usage={"prompt_tokens": prompt, "completion_tokens": completion_tokens})
    server = serve(lambda conn, request, srv: respond(conn, data))
    with client_for(server) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 50)
    assert result.usage.total_tokens == 1050 and not result.cost_estimated


@pytest.mark.parametrize("usage", [{"prompt_tokens": 1.5, "completion_tokens": 2},
                                   {"prompt_tokens": "lots", "completion_tokens": 2},
                                   {"prompt_tokens": True, "completion_tokens": 2},
                                   {"completion_tokens": 2}, "none", [1, 2]])
def test_unknown_usage_is_estimated_never_a_silent_zero(serve, usage, clock):
    data = completion("an answer of a few words", usage=usage)
    server = serve(lambda conn, request, srv: respond(conn, data))
    tracker = llmroute.CostTracker()
    limiter = llmroute.RateLimiter(tpm=100000, clock=clock, sleep=clock.sleep)
    with client_for(server, tracker=tracker, limiter=limiter) as client:
        result = client.chat("gpt-5.4", MESSAGES, max_tokens=500)
    assert result.cost_estimated and result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens > 0 and result.cost_usd > 0
    assert tracker.snapshot().by_model["gpt-5.4"].cost_usd == result.cost_usd
    # The limiter was settled with the estimate, not left at the 500-token reservation.
    assert limiter.tokens_bucket.level == pytest.approx(100000 - result.usage.total_tokens,
                                                        abs=0.01)


def test_a_refused_connection_was_not_sent_and_follows_the_connect_switch(serve):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = llmroute.RetryPolicy(max_retries=2, initial_delay=0.01, retry_connect_errors=False)
    with llmroute.Client("http://127.0.0.1:%d/v1" % port, KEY, retry=policy) as client:
        with pytest.raises(llmroute.APIConnectionError) as info:
            client.chat("gpt-5.4", MESSAGES)
    assert info.value.request_sent is False and len(info.value.attempt_log) == 1
    assert info.value.__cause__ is None and info.value.__context__ is None
    sleeps = []
    policy = llmroute.RetryPolicy(max_retries=2, initial_delay=0.01, retry_sent_errors=False)
    with llmroute.Client("http://127.0.0.1:%d/v1" % port, KEY, retry=policy,
                         sleep=sleeps.append) as client:
        with pytest.raises(llmroute.APIConnectionError) as info:
            client.chat("gpt-5.4", MESSAGES)
    assert [a.number for a in info.value.attempt_log] == [1, 2, 3] and len(sleeps) == 2


def test_the_gateways_own_cost_is_a_decimal_and_garbage_is_none(serve):
    answers = iter(["x-litellm-response-cost: 0.00042", "x-litellm-response-cost: nan-ish",
                    "x-litellm-response-cost: -1", ""])

    def handler(conn, request, server):
        extra = next(answers)
        respond(conn, completion(), headers=[extra] if extra else [])

    server = serve(handler)
    with client_for(server) as client:
        costs = [client.chat("gpt-5.4", MESSAGES).gateway_cost_usd for _ in range(4)]
    assert costs == [Decimal("0.00042"), None, None, None]


def test_every_try_says_which_retry_it_is(serve):
    def handler(conn, request, server):
        if len(server.requests) < 3:
            respond(conn, b'{"error": {"message": "busy"}}', status=503)
        else:
            respond(conn, completion())

    server = serve(handler)
    with client_for(server) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]
    keys = {r.headers["idempotency-key"] for r in server.requests}
    assert len(keys) == 1
    assert [(a.status, a.error) for a in result.attempt_log] == [
        (503, "InternalServerError"), (503, "InternalServerError"), (200, None)]
    assert all(a.wait > 0 for a in result.attempt_log[:2]) and result.attempt_log[2].wait == 0


def test_a_status_error_carries_the_attempt_log(serve):
    server = serve(lambda conn, request, srv: respond(
        conn, b'{"error": {"message": "bad"}}', status=400))
    with client_for(server) as client:
        with pytest.raises(llmroute.BadRequestError) as info:
            client.chat("gpt-5.4", MESSAGES)
    assert [(a.number, a.status, a.reason) for a in info.value.attempt_log] == [
        (1, 400, "not retryable")]


def test_a_stream_carries_the_gateways_own_cost_and_its_attempt_log(serve):
    from _servers import chunk, sse_events

    def handler(conn, request, server):
        conn.sendall(head(200, ["Transfer-Encoding: chunked", "x-litellm-response-cost: 1.5e-5"],
                          content_type="text/event-stream")
                     + b"".join(chunk(e) for e in sse_events(["hi"])) + b"0\r\n\r\n")

    server = serve(handler)
    with client_for(server) as client:
        result = client.stream("gpt-5.4", MESSAGES).result()
    assert result.gateway_cost_usd == Decimal("0.000015") and result.content == "hi"
    assert [(a.number, a.status) for a in result.attempt_log] == [(1, 200)]
