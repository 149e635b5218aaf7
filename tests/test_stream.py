"""Streaming against the FakeGateway: deltas, usage and cost, early close, cuts, the limiter."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

import llmroute
from llmroute.limits import RateLimiter
from llmroute.retry import RetryPolicy
from llmroute.stream import sse_data
from llmroute.testing import Reply

KEY = "sk-stream-0123456789"
MESSAGES = [{"role": "user", "content": "Tell me a long story."}]
SSE = {"Content-Type": "text/event-stream"}
# 2,000 four-character words: one token each by the package's estimate, one delta each.
LONG = " ".join("w%03d" % (i % 1000) for i in range(2000))


def event(delta=None, finish=None, **extra):
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-5.4",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    body.update(extra)
    return "data: %s\n\n" % json.dumps(body)


@pytest.fixture
def limiter(clock):
    return RateLimiter(tpm=1_000_000, max_concurrent=1, clock=clock, sleep=clock.sleep)


@pytest.fixture
def client(gw, clock, limiter):
    with llmroute.Client(gw.base_url, KEY, retry=RetryPolicy(jitter=0), limiter=limiter,
                         tracker=llmroute.CostTracker(), clock=clock, sleep=clock.sleep) as c:
        yield c


# The SSE parser -------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, events", [
    (b"data: a\n\ndata: b\n\n", ["a", "b"]),
    (b"data: a\r\n\r\ndata: b\r\n\r\n", ["a", "b"]),
    (b"data: a\r\rdata: b\r\r", ["a", "b"]),
    (b"data:no-space\n\n", ["no-space"]),
    (b"data:  two spaces\n\n", [" two spaces"]),
    (b"data: line 1\ndata: line 2\n\n", ["line 1\nline 2"]),
    (b": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: x\n\n", ["x"]),
    (b"\n\n\ndata: a\n\n\n\n", ["a"]),
    (b"data: caf\xc3\xa9\n\n", ["café"]),
    (b"data: [DONE]", ["[DONE]"]),  # a bare [DONE] at EOF still ends the stream
    (b"data: {\"cut\": tr", []),  # an event cut by EOF is dropped
    (b"data: a\n\ndata: {\"cut\"", ["a"]),
])
def test_sse_events_are_the_same_however_the_bytes_are_split(raw, events):
    assert list(sse_data([raw])) == events
    assert list(sse_data([raw[i:i + 1] for i in range(len(raw))])) == events
    middle = len(raw) // 2
    assert list(sse_data([raw[:middle], b"", raw[middle:]])) == events


def test_an_endless_sse_line_is_refused(monkeypatch):
    import llmroute.stream as stream

    monkeypatch.setattr(stream, "MAX_LINE_BYTES", 100)
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        list(sse_data([b"data: " + b"x" * 60, b"x" * 60]))


# A whole stream -------------------------------------------------------------------------------
def test_a_2000_token_answer_arrives_as_deltas_that_add_up_to_the_content(gw, client, limiter):
    gw.script("gpt-5.4", LONG)
    with client.stream("gpt-5.4", MESSAGES, max_tokens=4000) as stream:
        deltas = list(stream)
        result = stream.result()
    assert len(deltas) == 2000 and all(deltas)
    assert "".join(deltas) == result.content == stream.text == LONG
    assert result.finish_reason == "stop" and result.attempts == 1
    assert result.usage.completion_tokens == 2000 and not result.cost_estimated
    spec = client.catalog.spec("gpt-5.4")
    assert result.cost_usd == spec.cost(result.usage.prompt_tokens, 2000) > 0
    assert result.request_id == gw.requests[0].request_id
    assert result.latency_ms >= stream.first_token_ms >= 0
    sent = gw.requests[0].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert limiter.in_flight == 0
    assert limiter.tokens_bucket.level == pytest.approx(1_000_000 - result.usage.total_tokens)
    totals = client.tracker.snapshot().by_model["gpt-5.4"]
    assert totals.requests == 1 and totals.cost_usd == result.cost_usd


def test_without_usage_from_the_server_it_is_estimated_and_flagged(gw, client):
    gw.script("gpt-5.4", Reply(content="one two three", usage=False))
    result = client.stream("gpt-5.4", MESSAGES).result()  # result() reads the stream through
    assert result.content == "one two three" and result.cost_estimated
    assert result.usage.completion_tokens == llmroute.estimate_tokens("one two three")
    assert result.usage.prompt_tokens == llmroute.estimate_tokens(MESSAGES)
    assert result.cost_usd is not None


def test_stream_options_are_merged_over_include_usage_or_left_out(gw, client):
    gw.script("gpt-5.4", "a", "b")
    client.stream("gpt-5.4", MESSAGES, stream_options={"x_flag": 1}).result()
    client.stream("gpt-5.4", MESSAGES, stream_options=None).result()
    first, second = (r.json for r in gw.requests)
    assert first["stream_options"] == {"include_usage": True, "x_flag": 1}
    assert "stream_options" not in second


def test_a_finished_stream_gives_its_connection_back_to_the_pool(gw, client):
    gw.script("gpt-5.4", "first answer", "second answer")
    assert client.stream("gpt-5.4", MESSAGES).result().content == "first answer"
    assert client.stream("gpt-5.4", MESSAGES).result().content == "second answer"
    pools = client.transport.adapter.poolmanager.pools
    assert [pools[key].num_connections for key in pools.keys()] == [1]


def test_tool_call_deltas_are_assembled(gw, client):
    calls = [{"id": "call_a", "function": {"name": "lookup", "arguments": {"q": "paris", "n": 3}}},
             {"id": "call_b", "function": {"name": "ping", "arguments": {}}}]
    gw.script("gpt-5.4", Reply(tool_calls=calls))
    with client.stream("gpt-5.4", MESSAGES, tools=[]) as stream:
        assert list(stream) == []
    result = stream.result()
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_a", "lookup", {"q": "paris", "n": 3}), ("call_b", "ping", {})]
    assert result.finish_reason == "tool_calls" and result.content is None


def test_tool_call_arguments_that_are_not_json_raise_at_the_end(gw, client, limiter):
    gw.script("gpt-5.4", Reply(tool_calls=[{"id": "c", "function": {"name": "f",
                                                                    "arguments": "{bad"}}]))
    stream = client.stream("gpt-5.4", MESSAGES)
    with pytest.raises(llmroute.ToolCallError) as info:
        list(stream)
    assert info.value.raw == "{bad" and limiter.in_flight == 0
    with pytest.raises(llmroute.ToolCallError):
        stream.result()


def test_a_gateway_that_ignores_stream_true_is_played_as_one_delta(gw, client, limiter):
    body = {"id": "x", "model": "gpt-5.4", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "whole answer"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    gw.script("gpt-5.4", Reply(json=body))
    with client.stream("gpt-5.4", MESSAGES) as stream:
        assert list(stream) == ["whole answer"]
    assert stream.result().usage.total_tokens == 7 and limiter.in_flight == 0


# Ending early, breaking, failing ----------------------------------------------------------------
def test_breaking_out_of_the_with_closes_the_socket_and_frees_the_slot(gw, client, limiter):
    gw.script("gpt-5.4", Reply(content=LONG, chunk_delay=0.002))
    with client.stream("gpt-5.4", MESSAGES) as stream:
        for count, _ in enumerate(stream, 1):
            if count == 3:
                break
        assert limiter.in_flight == 1  # the slot is held while the stream is open
    assert limiter.in_flight == 0
    assert gw.wait_for_disconnect(timeout=5)
    assert gw.requests[0].disconnected
    partial = stream.result()
    assert partial.content == "w000 w001 w002 " and partial.finish_reason is None
    assert partial.cost_estimated and list(stream) == []


def test_a_stream_cut_midway_raises_with_the_partial_text(gw, client, limiter):
    gw.script("gpt-5.4", Reply(content=LONG, cut_after=5))
    stream = client.stream("gpt-5.4", MESSAGES)
    received = []
    with pytest.raises(llmroute.StreamInterruptedError) as info:
        for delta in stream:
            received.append(delta)
    assert info.value.partial_text == "".join(received) == "w000 w001 w002 w003 w004 "
    assert isinstance(info.value, llmroute.APIConnectionError)
    assert limiter.in_flight == 0
    # the tokens that were generated stay charged against TPM (an estimate; no usage came)
    assert limiter.tokens_bucket.level < 1_000_000
    assert client.tracker.snapshot().by_model["gpt-5.4"].errors == 1
    with pytest.raises(llmroute.StreamInterruptedError):
        stream.result()


def test_eof_without_done_is_an_interruption(gw, client):
    body = event({"content": "half"}) + event({"content": " done"})
    gw.script("gpt-5.4", Reply(body=body, headers=SSE))
    with pytest.raises(llmroute.StreamInterruptedError, match="without \\[DONE\\]") as info:
        list(client.stream("gpt-5.4", MESSAGES))
    assert info.value.partial_text == "half done"


def test_an_error_event_mid_stream_is_an_interruption(gw, client):
    body = event({"content": "so far"}) + 'data: {"error": {"message": "overloaded"}}\n\n'
    gw.script("gpt-5.4", Reply(body=body, headers=SSE))
    with pytest.raises(llmroute.StreamInterruptedError, match="overloaded") as info:
        list(client.stream("gpt-5.4", MESSAGES))
    assert info.value.partial_text == "so far"


def test_an_event_that_is_not_json_is_an_invalid_response(gw, client, limiter):
    gw.script("gpt-5.4", Reply(body=event({"content": "a"}) + "data: {oops\n\n", headers=SSE))
    with pytest.raises(llmroute.InvalidResponseError, match="not JSON"):
        list(client.stream("gpt-5.4", MESSAGES))
    assert limiter.in_flight == 0


def test_a_non_chunked_stream_with_usage_and_done_is_read_whole(gw, client):
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    body = (": comment\n\n" + event({"role": "assistant", "content": ""})
            + event({"content": "hi"}) + event({"content": " there"}, "stop")
            + 'data: {"choices": [], "usage": %s}\n\n' % json.dumps(usage) + "data: [DONE]\n\n")
    gw.script("gpt-5.4", Reply(body=body, headers=SSE))
    result = client.stream("gpt-5.4", MESSAGES).result()
    assert result.content == "hi there" and result.usage.total_tokens == 5
    assert result.cost_usd == Decimal(3 * 15 + 2 * 30) / 1_000_000


def test_the_deadline_ends_a_stream_that_runs_past_it(gw, client, clock, limiter):
    gw.script("gpt-5.4", LONG)
    stream = client.stream("gpt-5.4", MESSAGES, deadline=30)
    assert next(stream) == "w000 "
    clock.advance(31)
    with pytest.raises(llmroute.StreamInterruptedError, match="deadline") as info:
        next(stream)
    assert info.value.partial_text == "w000 " and limiter.in_flight == 0


# Before the first byte -------------------------------------------------------------------------
def test_retries_happen_before_the_first_byte(gw, client, clock):
    gw.script("gpt-5.4", Reply(status=503), "after a retry")
    result = client.stream("gpt-5.4", MESSAGES).result()
    assert result.content == "after a retry" and result.attempts == 2
    assert len(clock.sleeps) == 1


def test_an_http_error_is_raised_by_stream_itself(gw, client, limiter):
    gw.script("gpt-5.4", Reply(status=400))
    with pytest.raises(llmroute.BadRequestError):
        client.stream("gpt-5.4", MESSAGES)
    assert limiter.in_flight == 0
    assert client.tracker.snapshot().by_model["gpt-5.4"].errors == 1


def test_bad_stream_options_are_a_value_error(client):
    with pytest.raises(ValueError, match="stream_options"):
        client.stream("gpt-5.4", MESSAGES, stream_options=["include_usage"])


def test_a_stream_asks_for_server_sent_events(gw, client):
    with client.stream("gpt-5.4", [{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream)
    assert text and gw.requests[0].header("Accept") == "text/event-stream"


def test_a_stream_with_n_choices_yields_only_choice_zero(gateway):
    client = llmroute.Client(gateway.base_url, "sk-test-key")
    try:
        with client.stream("gpt-5.4", [{"role": "user", "content": "hello there"}], n=2) as s:
            text = "".join(s)
        single = client.chat("gpt-5.4", [{"role": "user", "content": "hello there"}]).content
    finally:
        client.close()
    assert text == single
