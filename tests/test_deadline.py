"""The deadline bounds the whole call while bytes arrive: real servers, real clock, wide margins.

The README promises D + 0.5 s; these tests use D = 1 and assert under D + 2 s so a loaded
2-core box cannot make them flake.
"""
from __future__ import annotations

import time

import pytest

import llmroute
from _servers import chunk, completion, head, respond, sse_events

KEY = "sk-test-deadline-0000"
MESSAGES = [{"role": "user", "content": "Say hello."}]
BOUND = 3.0  # D + 2 s with D = 1


def trickle_body(conn, request, server):
    body = completion("slow " * 40)
    conn.sendall(head(200, ["Connection: close"], len(body)))
    for byte in body:
        conn.sendall(bytes([byte]))
        if server.pause(0.05):
            return


def headers_then_silence(conn, request, server):
    conn.sendall(head(200, ["Connection: close"], 500))
    server.pause(10)


def slow_answer(conn, request, server):
    if not server.pause(10):
        respond(conn, completion())


def sse_head():
    return head(200, ["Transfer-Encoding: chunked"], content_type="text/event-stream")


def comments_only(conn, request, server):
    conn.sendall(sse_head())
    while not server.pause(0.1):
        conn.sendall(chunk(b": keep-alive\n\n"))


def one_data_line_a_byte_at_a_time(conn, request, server):
    conn.sendall(sse_head())
    for byte in sse_events(["never finishes"] * 20)[0] * 20:
        conn.sendall(chunk(bytes([byte])))
        if server.pause(0.05):
            return


def done_without_close(conn, request, server):
    conn.sendall(sse_head() + b"".join(chunk(e) for e in sse_events(["a", "b"])))
    server.pause(10)


def timed(call):
    started = time.monotonic()
    with pytest.raises(llmroute.APITimeoutError) as info:
        call()
    return time.monotonic() - started, info.value


@pytest.mark.parametrize("handler", [trickle_body, headers_then_silence, slow_answer],
                         ids=lambda f: f.__name__)
def test_chat_returns_within_its_deadline_whatever_the_server_does(serve, handler):
    server = serve(handler)
    with llmroute.Client(server.base_url, KEY, timeout=(5, 30)) as client:
        elapsed, error = timed(lambda: client.chat("gpt-5.4", MESSAGES, deadline=1))
    assert elapsed < BOUND
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("handler", [comments_only, one_data_line_a_byte_at_a_time],
                         ids=lambda f: f.__name__)
def test_a_stream_ends_within_its_deadline(serve, handler):
    server = serve(handler)
    with llmroute.Client(server.base_url, KEY, timeout=(5, 30)) as client:
        def read():
            with client.stream("gpt-5.4", MESSAGES, deadline=1) as stream:
                list(stream)
        elapsed, error = timed(read)
    assert elapsed < BOUND and isinstance(error, llmroute.StreamTimeoutError)


def test_a_stream_sending_only_comments_times_out_after_the_read_timeout(serve):
    server = serve(comments_only)
    with llmroute.Client(server.base_url, KEY, timeout=(5, 1)) as client:
        def read():
            list(client.stream("gpt-5.4", MESSAGES))
        elapsed, error = timed(read)
    assert 0.9 < elapsed < BOUND and isinstance(error, llmroute.StreamInterruptedError)


def test_a_stream_is_finished_at_done_even_if_the_server_keeps_the_connection(serve):
    server = serve(done_without_close)
    with llmroute.Client(server.base_url, KEY, timeout=(5, 5)) as client:
        started = time.monotonic()
        result = client.stream("gpt-5.4", MESSAGES).result()
        elapsed = time.monotonic() - started
    assert result.content == "ab" and result.finish_reason == "stop"
    assert elapsed < 2.5  # the read timeout is 5 s: waiting for a close would take that


def test_a_slow_but_steady_answer_within_the_deadline_succeeds(serve):
    def steady(conn, request, server):
        body = completion("fine")
        conn.sendall(head(200, ["Connection: close"], len(body)) + body[:10])
        if not server.pause(0.2):
            conn.sendall(body[10:])

    server = serve(steady)
    with llmroute.Client(server.base_url, KEY) as client:
        assert client.chat("gpt-5.4", MESSAGES, deadline=2).content == "fine"


@pytest.mark.parametrize("deadline", ["1", True, 0, -1, float("nan"), float("inf")])
def test_a_deadline_that_is_not_positive_seconds_is_refused(deadline):
    with llmroute.Client("http://127.0.0.1:9/v1", KEY) as client:
        with pytest.raises(ValueError, match="deadline"):
            client.chat("gpt-5.4", MESSAGES, deadline=deadline)
        with pytest.raises(ValueError, match="deadline"):
            client.stream("gpt-5.4", MESSAGES, deadline=deadline)
