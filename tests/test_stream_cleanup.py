"""Streams clean up after themselves: compressed streams decode, abandoned ones give back."""
from __future__ import annotations

import gc

import pytest

import llmroute
from llmroute.testing import Reply
from _servers import chunk, gzip_stream, head, sse_events

KEY = "sk-test-cleanup-0000"
MESSAGES = [{"role": "user", "content": "Count."}]
DELTAS = ["one ", "two ", "three"]


def sse_server(serve, encoding=None):
    def handler(conn, request, server):
        events = sse_events(DELTAS)
        extra = ["Transfer-Encoding: chunked"]
        if encoding == "gzip":
            events = gzip_stream(events)
            extra.append("Content-Encoding: gzip")
        conn.sendall(head(200, extra, content_type="text/event-stream")
                     + b"".join(chunk(e) for e in events) + b"0\r\n\r\n")
    return serve(handler)


def test_a_gzip_encoded_stream_yields_the_same_deltas_as_a_plain_one(serve):
    plain, zipped = sse_server(serve), sse_server(serve, "gzip")
    results = []
    for server in (plain, zipped):
        with llmroute.Client(server.base_url, KEY) as client:
            with client.stream("gpt-5.4", MESSAGES) as stream:
                results.append((list(stream), stream.result().usage.completion_tokens))
    assert results[0] == results[1] == (DELTAS, 3)


def test_two_hundred_abandoned_streams_give_back_their_slots(gw):
    limiter = llmroute.RateLimiter(max_concurrent=2)
    tracker = llmroute.CostTracker()
    gw.responder = lambda request: Reply(content="a long answer to leave early " * 3)
    with llmroute.Client(gw.base_url, KEY, limiter=limiter, tracker=tracker) as client:
        for _ in range(200):
            for _delta in client.stream("gpt-5.4", MESSAGES, deadline=2):
                break  # abandoned: no with, no close; the stream is dropped here
        assert client.chat("gpt-5.4", MESSAGES, timeout=(2, 2)).content
    totals = tracker.snapshot().by_model["gpt-5.4"]
    assert totals.requests == 201 and totals.errors == 0
    assert totals.cost_usd > 0  # the abandoned streams were billed (estimated), not free


def test_a_dropped_stream_only_queues_its_cleanup_and_the_next_call_runs_it(gw):
    limiter = llmroute.RateLimiter(max_concurrent=1)
    tracker = llmroute.CostTracker()
    gw.responder = lambda request: Reply(content="word " * 50)
    with llmroute.Client(gw.base_url, KEY, limiter=limiter, tracker=tracker) as client:
        stream = client.stream("gpt-5.4", MESSAGES)
        next(stream)
        del stream
        gc.collect()
        # The finalizer took no lock: the slot is still held until the client's next call.
        assert tracker.snapshot().requests == 0
        assert client.chat("gpt-5.4", MESSAGES, timeout=(2, 2)).content
        assert tracker.snapshot().requests == 2


def test_a_stream_closed_or_finished_is_not_settled_again_when_dropped(gw):
    tracker = llmroute.CostTracker()
    with llmroute.Client(gw.base_url, KEY, tracker=tracker) as client:
        with client.stream("gpt-5.4", MESSAGES) as stream:
            next(stream)
        assert client.stream("gpt-5.4", MESSAGES).result().content
        del stream
        gc.collect()
        client.close()
    assert tracker.snapshot().requests == 2


@pytest.mark.parametrize("cut", ["mid-event", "no-done"])
def test_a_stream_cut_short_is_recorded_as_an_error(serve, cut):
    def handler(conn, request, server):
        events = sse_events(DELTAS)
        body = b"".join(events[:2]) + (events[2][:10] if cut == "mid-event" else b"")
        conn.sendall(head(200, ["Connection: close"], content_type="text/event-stream") + body)

    server = serve(handler)
    tracker = llmroute.CostTracker()
    with llmroute.Client(server.base_url, KEY, tracker=tracker) as client:
        stream = client.stream("gpt-5.4", MESSAGES)
        with pytest.raises(llmroute.StreamInterruptedError) as info:
            list(stream)
    assert info.value.partial_text == "one two " and info.value.request_sent
    assert tracker.snapshot().errors == 1
