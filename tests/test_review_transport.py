"""Adversarial review of the transport layer (issue 9): each test names a promise that breaks.

Every test fails on the code as reviewed and passes once the promise holds.
"""
from __future__ import annotations

import gc
import json
import time
import traceback

import pytest

import llmroute
from _servers import completion, head, respond, sse_events

KEY = "sk-review-transport-0000"
MESSAGES = [{"role": "user", "content": "Say hello."}]
FAST = llmroute.RetryPolicy(max_retries=2, initial_delay=0.01, jitter=0)


def client_for(server, key=KEY, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", (2, 2))
    return llmroute.Client(server.base_url, key, **kw)


def _trickle(conn, server, first, byte, seconds):
    """Send ``first``, then ``byte`` every 0.1 s for ``seconds`` (or until the client leaves)."""
    conn.sendall(first)
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if server.pause(0.1):
            return
        conn.sendall(byte)


# 2. The deadline bounds the whole call, while bytes arrive too ------------------------------
def test_chat_deadline_bounds_a_chunked_body_whose_chunk_size_line_trickles(serve):
    # The chunk-size line is read by http.client's readline: each recv is bounded by the socket
    # timeout, but the loop over recvs is not, so the deadline is never looked at again.
    def handler(conn, request, server):
        _trickle(conn, server, head(200, ["Transfer-Encoding: chunked", "Connection: close"])
                 + b"1;", b"a", 4.0)

    server = serve(handler)
    with client_for(server, retry=llmroute.RetryPolicy(max_retries=0)) as client:
        started = time.monotonic()
        with pytest.raises(llmroute.errors.APIConnectionError) as caught:
            client.chat("gpt-5.4", MESSAGES, deadline=1)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, "deadline=1 but the call took %.2fs" % elapsed
    assert isinstance(caught.value, llmroute.errors.APITimeoutError)


def test_chat_deadline_bounds_a_gzip_body_whose_header_trickles(serve):
    # A gzip member's FNAME field yields no decoded byte: urllib3's read1 loops on raw reads
    # until the decoder gives output, past the deadline that BodyReader.read checked once.
    gz_head = b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff"  # FLG=FNAME: a name follows

    def handler(conn, request, server):
        _trickle(conn, server, head(200, ["Content-Encoding: gzip", "Connection: close"],
                                    length=100000) + gz_head, b"n", 4.0)

    server = serve(handler)
    with client_for(server, retry=llmroute.RetryPolicy(max_retries=0)) as client:
        started = time.monotonic()
        with pytest.raises(llmroute.errors.APIConnectionError) as caught:
            client.chat("gpt-5.4", MESSAGES, deadline=1)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, "deadline=1 but the call took %.2fs" % elapsed
    assert isinstance(caught.value, llmroute.errors.APITimeoutError)


def test_stream_deadline_bounds_a_chunk_size_line_that_trickles(serve):
    def handler(conn, request, server):
        first = sse_events(["hi"], usage=False)[0]
        _trickle(conn, server, head(200, ["Transfer-Encoding: chunked", "Connection: close"],
                                    content_type="text/event-stream")
                 + b"%x\r\n%s\r\n" % (len(first), first) + b"1;", b"a", 4.0)

    server = serve(handler)
    with client_for(server, retry=llmroute.RetryPolicy(max_retries=0)) as client:
        started = time.monotonic()
        with pytest.raises(llmroute.errors.APIConnectionError) as caught:
            with client.stream("gpt-5.4", MESSAGES, deadline=1) as stream:
                for _ in stream:
                    pass
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, "deadline=1 but the stream took %.2fs" % elapsed
    assert isinstance(caught.value, llmroute.errors.StreamTimeoutError)


# 1. Typed errors only, and the right reaction to each ---------------------------------------
def test_a_2xx_with_conflicting_content_lengths_is_a_connection_error_not_a_config_error(serve):
    # urllib3 raises InvalidHeader for "Content-Length: 5, 7"; requests turns it into its own
    # InvalidHeader, which _attempt maps to ConfigError (a ValueError: "bad argument").
    def handler(conn, request, server):
        body = completion()
        conn.sendall(head(200, ["Content-Length: %d" % len(body), "Content-Length: 7",
                                "Connection: close"]) + body)

    server = serve(handler)
    tracker = llmroute.CostTracker()
    with client_for(server, tracker=tracker) as client:
        with pytest.raises(llmroute.LLMRouteError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    err = caught.value
    assert not isinstance(err, ValueError), "a server's bad header became %r" % (err,)
    assert isinstance(err, (llmroute.errors.APIConnectionError,
                            llmroute.errors.InvalidResponseError))
    assert tracker.snapshot().errors >= 1


def test_chat_json_survives_a_reply_holding_a_lone_surrogate(serve):
    # The server's first reply (not JSON, with a lone surrogate as a gateway that cut an emoji
    # sends) goes back in the repair turn; encode_payload then refuses the transcript with a
    # bare ValueError blaming "messages", which the caller never gave.
    def handler(conn, request, server):
        if len(server.requests) == 1:
            body = json.dumps({"choices": [{"index": 0, "message": {
                "role": "assistant", "content": "oops \ud83d"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
        else:
            body = completion('{"ok": true}')
        respond(conn, body)

    server = serve(handler)
    with client_for(server) as client:
        result = client.chat_json("gpt-5.4", [{"role": "user", "content": "JSON please"}])
    assert result.data == {"ok": True} and result.repairs == 1


def test_run_tools_survives_tool_arguments_holding_a_lone_surrogate(serve):
    # The raw arguments go back in the assistant message of the next round; encode_payload
    # refuses them with a bare ValueError about "messages" after a billed round.
    def handler(conn, request, server):
        if len(server.requests) == 1:
            body = json.dumps({"choices": [{"index": 0, "finish_reason": "tool_calls",
                                            "message": {"role": "assistant", "content": None,
                                                        "tool_calls": [{
                "id": "c1", "type": "function",
                "function": {"name": "echo", "arguments": '{"text": "cut \ud83d"}'}}]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
        else:
            body = completion("done")
        respond(conn, body)

    def echo(text: str) -> str:
        return "got %d chars" % len(text)

    server = serve(handler)
    with client_for(server) as client:
        run = llmroute.run_tools(client, "gpt-5.4", MESSAGES, {"echo": echo})
    assert run.result.content == "done" and run.rounds == 2


# 4. Secrets stay secret, in every path -------------------------------------------------------
SLASH_KEY = "Zq81/Xv4+Lm0/Pt7Ws2/Ye9"  # a base64-style key: '/' and '+' are common


def test_status_error_message_never_shows_a_key_echoed_with_json_escapes(serve):
    # Many servers (PHP's json_encode, some proxies) escape '/' as '\/'; Python's json.dumps
    # escapes non-ASCII as \\uXXXX. status_error redacts the raw excerpt, then _error_detail
    # json-decodes it, which turns the escaped key back into the key in str(err).
    def handler(conn, request, server):
        sent = request.headers["authorization"].split(" ", 1)[1]
        message = "Incorrect API key provided: %s" % sent.replace("/", "\\/")
        body = ('{"error": {"message": "%s", "type": "invalid_request_error"}}'
                % message).encode()
        respond(conn, body, status=401)

    server = serve(handler)
    with client_for(server, key=SLASH_KEY) as client:
        with pytest.raises(llmroute.errors.AuthenticationError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    err = caught.value
    shown = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert SLASH_KEY not in str(err)
    assert SLASH_KEY not in shown


def test_chat_result_raw_never_holds_a_key_the_server_echoed(serve):
    # README: the key never appears "in a ChatResult, even when a server echoes it back".
    def handler(conn, request, server):
        body = json.loads(completion())
        body["echo"] = {"authorization": request.headers["authorization"]}
        respond(conn, json.dumps(body).encode())

    server = serve(handler)
    with client_for(server) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert KEY not in json.dumps(result.raw)


def test_not_json_excerpt_never_shows_part_of_an_echoed_key(serve):
    # finish_chat cuts the body at 200 bytes and redacts after: a key straddling the cut is no
    # longer whole, so its first characters are shown (status_error redacts first, then cuts).
    def handler(conn, request, server):
        sent = request.headers["authorization"].split(" ", 1)[1]
        respond(conn, b"<" * 190 + sent.encode())

    server = serve(handler)
    with client_for(server, key=SLASH_KEY) as client:
        with pytest.raises(llmroute.errors.InvalidResponseError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    err = caught.value
    assert SLASH_KEY[:10] not in str(err)
    assert SLASH_KEY[:10] not in err.body


def test_a_key_sent_in_extra_headers_authorization_is_redacted_too(serve):
    # A per-call key (one gateway key per end user) goes in extra_headers' Authorization; it
    # is not added to the secrets, so a 401 that echoes it shows it in str(err) and err.headers.
    user_key = "Uk7/Gh3+Wd9/Lo2Qe5Rt8"

    def handler(conn, request, server):
        sent = request.headers["authorization"].split(" ", 1)[1]
        body = json.dumps({"error": {"message": "Incorrect API key provided: " + sent}})
        respond(conn, body.encode(), status=401, headers=["X-Echo-Key: " + sent])

    server = serve(handler)
    with client_for(server) as client:
        with pytest.raises(llmroute.errors.AuthenticationError) as caught:
            client.chat("gpt-5.4", MESSAGES,
                        extra_headers={"Authorization": "Bearer " + user_key})
    err = caught.value
    assert server.requests[0].headers["authorization"] == "Bearer " + user_key
    assert user_key not in str(err)
    assert user_key not in repr(err.headers)


def test_config_error_for_a_bad_base_url_chains_nothing(serve):
    # urlsplit's ValueError quotes the whole netloc, password included; ``from None`` hides it
    # from the traceback but leaves it on __context__, which the README says stays empty.
    password = "s3cr\u2100etpass"  # U+2100 normalises to "a/c": urlsplit refuses the netloc
    with pytest.raises(llmroute.ConfigError) as caught:
        llmroute.Client("http://user:%s@127.0.0.1:1/v1" % password, KEY)
    err = caught.value
    assert password not in str(err)
    assert err.__cause__ is None and err.__context__ is None, \
        "__context__ holds %r" % (err.__context__,)


def test_tool_call_error_chains_nothing(serve):
    # README: "the errors llmroute raises chain none (__cause__ and __context__ are empty)".
    def handler(conn, request, server):
        body = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [{
                "id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{not json"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
        respond(conn, json.dumps(body).encode())

    server = serve(handler)
    with client_for(server) as client:
        with pytest.raises(llmroute.errors.ToolCallError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    err = caught.value
    assert err.__cause__ is None and err.__context__ is None, \
        "__context__ holds %r" % (err.__context__,)


# 3. Streams clean up after themselves --------------------------------------------------------
def test_an_abandoned_stream_frees_its_slot_for_another_client_sharing_the_limiter(serve):
    # The finalizer queues the cleanup on the abandoning client's Transport only; a second
    # client (or a Router's other client) sharing the limiter never runs that queue.
    def handler(conn, request, server):
        if request.json().get("stream"):
            conn.sendall(head(200, ["Connection: close"], content_type="text/event-stream")
                         + sse_events(["hi"], usage=False)[0])
            server.pause(4)
        else:
            respond(conn, completion())

    server = serve(handler)
    limiter = llmroute.RateLimiter(max_concurrent=1)
    streaming = client_for(server, limiter=limiter)
    other = client_for(server, limiter=limiter)
    try:
        stream = streaming.stream("gpt-5.4", MESSAGES)
        for _ in stream:
            break
        del stream
        gc.collect()
        result = other.chat("gpt-5.4", MESSAGES, deadline=1.5)
        assert result.content == "hello"
    finally:
        other.close()
        streaming.close()


# 1. ... the right reaction to each: an interim 1xx is not the answer ------------------------
def test_an_early_hints_103_before_the_answer_is_not_an_error_status(serve):
    # http.client skips only "100 Continue": a "103 Early Hints" (RFC 8297) is taken as the
    # final answer, raised as APIStatusError(103), not retried, while the real (billed) 200
    # that follows is thrown away.
    def handler(conn, request, server):
        body = completion()
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                     + head(200, ["Connection: close"], len(body)) + body)

    server = serve(handler)
    with client_for(server) as client:
        try:
            result = client.chat("gpt-5.4", MESSAGES)
        except llmroute.errors.APIStatusError as err:
            pytest.fail("an interim 103 was raised as the answer: %r" % (err,))
        except llmroute.errors.APIConnectionError:
            return  # acceptable: "no complete answer", retried by retry_sent_errors
    assert result.content == "hello"
