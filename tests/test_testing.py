"""FakeGateway over real sockets on 127.0.0.1, driven with plain ``requests``."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import pytest
import requests

from llmroute.testing import FakeGateway, RecordedRequest, Reply
from llmroute.tokens import estimate_tokens

MODEL = "gpt-5.4"
MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there, how are you"}]
LONG_TEXT = " ".join("word%d" % i for i in range(40))
STREAM_ERRORS = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


@pytest.fixture
def gw():
    with FakeGateway() as gateway:
        yield gateway


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # never route 127.0.0.1 through a developer's proxy
    yield session
    session.close()


def chat(http, gw, model=MODEL, timeout=5, **body):
    body.setdefault("messages", MESSAGES)
    return http.post(gw.base_url + "/chat/completions", json=dict(model=model, **body),
                     timeout=timeout)


def content_of(response):
    return response.json()["choices"][0]["message"]["content"]


def sse_events(response):
    """The decoded ``data:`` events of a stream; ``[DONE]`` becomes ``None``."""
    events = []
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            data = line[len(b"data: "):]
            events.append(None if data == b"[DONE]" else json.loads(data))
    return events


def stream(http, gw, model=MODEL, **body):
    body.setdefault("messages", MESSAGES)
    return http.post(gw.base_url + "/chat/completions", stream=True, timeout=5,
                     json=dict(model=model, stream=True, **body))


# -- completions ---------------------------------------------------------------------------------


def test_default_completion_has_openai_shape_and_estimated_usage(gw, http):
    response = chat(http, gw)
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    data = response.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == MODEL
    choice = data["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant",
                                 "content": "[fake:gpt-5.4] Reply to: hello there, how are you"}
    completion = estimate_tokens(choice["message"]["content"])
    assert data["usage"] == {"prompt_tokens": estimate_tokens(MESSAGES),
                             "completion_tokens": completion,
                             "total_tokens": estimate_tokens(MESSAGES) + completion}


def test_default_content_quotes_only_the_first_words_of_the_last_user_message(gw, http):
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                {"role": "user", "content": LONG_TEXT}]
    assert content_of(chat(http, gw, messages=messages)) == (
        "[fake:gpt-5.4] Reply to: word0 word1 word2 word3 word4 word5 word6 word7...")


@pytest.mark.parametrize("limit_key", ["max_tokens", "max_completion_tokens"])
def test_token_limit_cuts_content_with_finish_reason_length(gw, http, limit_key):
    data = chat(http, gw, **{limit_key: 3}).json()
    assert data["choices"][0]["message"]["content"] == "[fake:gpt-5.4] Reply to:"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


def test_token_limit_larger_than_content_changes_nothing(gw, http):
    data = chat(http, gw, max_tokens=500).json()
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] < 500


def test_usage_can_be_overridden_or_omitted(gw, http):
    gw.script(MODEL, Reply(content="x", usage={"prompt_tokens": 1, "completion_tokens": 1,
                                               "total_tokens": 2}), Reply(usage=False))
    assert chat(http, gw).json()["usage"] == {"prompt_tokens": 1, "completion_tokens": 1,
                                              "total_tokens": 2}
    assert "usage" not in chat(http, gw).json()


def test_tool_calls_reply_has_tool_calls_and_finish_reason_tool_calls(gw, http):
    gw.script(MODEL, Reply(tool_calls=[{"function": {"name": "get_weather",
                                                     "arguments": {"city": "Oslo"}}}]))
    choice = chat(http, gw).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


# -- scripts and responder -------------------------------------------------------------------------


def test_script_plays_per_model_first_in_first_out_then_default(gw, http):
    gw.script(MODEL, Reply(content="one"), "two")
    assert content_of(chat(http, gw, model="other")).startswith("[fake:other]")
    assert content_of(chat(http, gw)) == "one"
    assert content_of(chat(http, gw)) == "two"
    assert content_of(chat(http, gw)).startswith("[fake:gpt-5.4]")
    assert gw.pending() == 0


def test_any_model_script_comes_after_the_model_script(gw, http):
    gw.script_any(Reply(content="any-1"), Reply(content="any-2"))
    gw.script(MODEL, Reply(content="mine"))
    assert content_of(chat(http, gw)) == "mine"
    assert content_of(chat(http, gw)) == "any-1"
    assert content_of(chat(http, gw, model="other")) == "any-2"
    assert content_of(chat(http, gw)).startswith("[fake:")


def test_scripted_429_sends_its_headers_and_an_openai_error(gw, http):
    gw.script(MODEL, Reply(status=429, headers={"Retry-After": "1"}), Reply(content="ok"))
    first = chat(http, gw)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert content_of(chat(http, gw)) == "ok"
    assert [r.answered_status for r in gw.requests_for(MODEL)] == [429, 200]


@pytest.mark.parametrize("status, kind", [(400, "invalid_request_error"),
                                          (404, "invalid_request_error"),
                                          (500, "server_error"), (503, "server_error"),
                                          (418, "invalid_request_error")])
def test_error_status_without_body_gets_openai_shaped_error(gw, http, status, kind):
    gw.script(MODEL, Reply(status=status))
    response = chat(http, gw)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == kind and error["message"]


def test_error_content_becomes_the_error_message(gw, http):
    message = "This model's maximum context length is 8192 tokens"
    gw.script(MODEL, Reply(status=400, content=message))
    assert chat(http, gw).json()["error"]["message"] == message


def test_raw_body_and_json_replies_are_sent_verbatim(gw, http):
    gw.script(MODEL, Reply(body="{not json"), Reply(status=502, body=b"<html>bad</html>",
                                                    headers={"Content-Type": "text/html"}),
              Reply(status=200, json={"choices": []}))
    assert chat(http, gw).text == "{not json"
    html = chat(http, gw)
    assert (html.status_code, html.text, html.headers["Content-Type"]) == (
        502, "<html>bad</html>", "text/html")
    assert chat(http, gw).json() == {"choices": []}


def test_responder_answers_when_no_script_is_queued(http):
    seen = []

    def responder(request):
        seen.append(request)
        return Reply(status=500) if request.json["messages"][-1]["content"] == "fail" else None

    with FakeGateway(responder=responder) as gw:
        gw.script(MODEL, Reply(content="scripted"))
        assert content_of(chat(http, gw, messages=[{"role": "user", "content": "fail"}])) == (
            "scripted")
        assert chat(http, gw, messages=[{"role": "user", "content": "fail"}]).status_code == 500
        assert chat(http, gw).status_code == 200
    assert [isinstance(r, RecordedRequest) for r in seen] == [True, True]


def test_responder_that_raises_becomes_a_500_naming_it(http):
    def responder(request):
        raise KeyError("oops")

    with FakeGateway(responder=responder) as gw:
        response = chat(http, gw)
    assert response.status_code == 500
    assert "responder raised" in response.json()["error"]["message"]


def test_reset_clears_scripts_and_records(gw, http):
    gw.script(MODEL, Reply(content="x"))
    chat(http, gw, model="other")
    gw.reset()
    assert gw.requests == [] and gw.pending() == 0
    assert content_of(chat(http, gw)).startswith("[fake:")


# -- requests the gateway refuses -----------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""])
def test_malformed_request_body_gets_400_json_error(gw, http, body):
    response = http.post(gw.base_url + "/chat/completions", data=body, timeout=5,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert gw.requests[-1].answered_status == 400


def test_request_without_model_gets_400(gw, http):
    response = http.post(gw.base_url + "/chat/completions", json={"messages": []}, timeout=5)
    assert response.status_code == 400
    assert "model" in response.json()["error"]["message"]


def test_unknown_path_gets_404_and_wrong_method_405(gw, http):
    missing = http.post(gw.base_url + "/completions", json={}, timeout=5)
    assert missing.status_code == 404
    assert "Unknown request URL" in missing.json()["error"]["message"]
    assert http.get(gw.base_url + "/chat/completions", timeout=5).status_code == 405


def test_models_lists_declared_scripted_and_requested_models(http):
    with FakeGateway(models=["a"]) as gw:
        gw.script("b", Reply())
        chat(http, gw, model="c")
        data = http.get(gw.base_url + "/models", timeout=5).json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["a", "b", "c"]


def test_api_key_is_required_when_set(http):
    with FakeGateway(api_key="sk-test-123") as gw:
        missing = chat(http, gw)
        wrong = http.post(gw.base_url + "/chat/completions", json={"model": MODEL, "messages": []},
                          headers={"Authorization": "Bearer nope"}, timeout=5)
        right = http.post(gw.base_url + "/chat/completions", json={"model": MODEL, "messages": []},
                          headers={"Authorization": "Bearer sk-test-123"}, timeout=5)
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"error": {"message": "Invalid API key provided",
                                        "type": "invalid_request_error", "param": None,
                                        "code": "invalid_api_key"}}
    assert right.status_code == 200


# -- delays, drops, close ------------------------------------------------------------------------


def test_drop_closes_the_connection_without_an_answer(gw, http):
    gw.script(MODEL, Reply(drop=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        chat(http, gw)
    assert gw.requests[-1].answered_status is None
    assert chat(http, gw).status_code == 200  # the next call gets a fresh connection


def test_delay_and_latency_are_honoured(http):
    with FakeGateway(latency=0.05, model_latency={"slow": 0.15}) as gw:
        gw.script(MODEL, Reply(delay=0.1))
        started = time.monotonic()
        chat(http, gw)
        scripted = time.monotonic() - started
        started = time.monotonic()
        chat(http, gw, model="slow")
        slow = time.monotonic() - started
    assert 0.15 <= scripted < 1.0
    assert 0.15 <= slow < 1.0


def test_close_returns_promptly_while_a_handler_sleeps_in_a_long_delay(http):
    gw = FakeGateway().start()
    gw.script(MODEL, Reply(delay=30))
    errors = []

    def call():
        try:
            chat(http, gw, timeout=10)
        except requests.exceptions.RequestException as err:
            errors.append(err)

    caller = threading.Thread(target=call)
    caller.start()
    assert gw.wait_for_requests(1, timeout=5)
    started = time.monotonic()
    gw.close()
    gw.close()  # idempotent
    assert time.monotonic() - started < 2.0
    caller.join(5)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], requests.exceptions.ConnectionError)


def test_client_timing_out_during_a_delay_is_recorded_as_disconnect(gw, http):
    gw.script(MODEL, Reply(delay=0.3))
    with pytest.raises(requests.exceptions.ReadTimeout):
        chat(http, gw, timeout=0.1)
    http.close()
    assert gw.wait_for_disconnect(timeout=2)
    assert gw.requests[-1].disconnected


def test_start_after_close_is_refused():
    gw = FakeGateway()
    gw.start()
    gw.start()
    gw.close()
    with pytest.raises(RuntimeError):
        gw.start()


def test_connections_are_kept_alive_between_requests(gw):
    connection = HTTPConnection("127.0.0.1", gw.port, timeout=5)
    body = json.dumps({"model": MODEL, "messages": MESSAGES})
    try:
        for _ in range(3):
            connection.request("POST", "/v1/chat/completions", body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["model"] == MODEL
            assert response.getheader("Connection") is None
    finally:
        connection.close()
    assert len(gw.requests) == 3


# -- streaming ---------------------------------------------------------------------------------


def test_stream_deltas_join_to_the_content_with_a_usage_chunk_when_asked(gw, http):
    expected = chat(http, gw).json()
    with stream(http, gw, stream_options={"include_usage": True}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] is None
    chunks, usage_chunk = events[:-2], events[-2]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == expected["choices"][0]["message"]["content"]
    assert len(chunks) - 2 > 3  # several content deltas between the role and the finish
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == expected["usage"]


def test_stream_without_include_usage_has_no_usage_chunk(gw, http):
    with stream(http, gw) as response:
        events = sse_events(response)
    assert events[-1] is None
    assert all("usage" not in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_chunks_and_tool_calls_are_streamed_as_deltas(gw, http):
    gw.script(MODEL, Reply(stream_chunks=["Hel", "lo"]),
              Reply(tool_calls=[{"id": "call_1", "function": {"name": "f",
                                                              "arguments": '{"x": 12345}'}}]))
    with stream(http, gw) as response:
        deltas = [e["choices"][0]["delta"] for e in sse_events(response)[:-1]]
    assert [d.get("content") for d in deltas[1:3]] == ["Hel", "lo"]
    with stream(http, gw) as response:
        events = sse_events(response)[:-1]
    calls = [d for e in events for d in e["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "f"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"x": 12345}'
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_streamed_error_status_is_a_json_error(gw, http):
    gw.script(MODEL, Reply(status=503))
    with stream(http, gw) as response:
        assert response.status_code == 503 and "error" in response.json()


def test_cut_after_drops_the_stream_after_that_many_deltas(gw, http):
    gw.script(MODEL, Reply(content=LONG_TEXT, cut_after=3))
    received = []
    with pytest.raises(STREAM_ERRORS):
        with stream(http, gw) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    assert line != b"data: [DONE]"
                    received.append(json.loads(line[6:])["choices"][0]["delta"])
    assert [d.get("content") for d in received[1:]] == ["word0 ", "word1 ", "word2 "]


def test_cut_after_on_a_plain_completion_truncates_the_body(gw, http):
    gw.script(MODEL, Reply(cut_after=10))
    with pytest.raises(STREAM_ERRORS):
        chat(http, gw)


def test_client_closing_mid_stream_is_recorded_as_a_disconnect(gw, http):
    gw.script(MODEL, Reply(content=LONG_TEXT, chunk_delay=0.01))
    deltas = 0
    response = stream(http, gw)
    for line in response.iter_lines():
        if line.startswith(b"data: ") and b'"content":"word' in line:
            deltas += 1
            if deltas == 3:
                break
    response.close()
    assert gw.wait_for_disconnect(timeout=2)
    assert gw.disconnects == 1 and gw.requests[-1].disconnected


# -- records and load ----------------------------------------------------------------------------


def test_records_keep_model_headers_json_and_monotonic_arrival_times(gw, http):
    before = time.monotonic()
    http.post(gw.base_url + "/chat/completions", timeout=5, headers={"X-Trace-Id": "t-1"},
              json={"model": "a", "messages": MESSAGES})
    chat(http, gw, model="b")
    records = gw.requests
    assert [r.model for r in records] == ["a", "b"]
    assert before <= records[0].time <= records[1].time <= time.monotonic()
    assert records[0].header("x-trace-id") == "t-1" and "X-Trace-Id" in records[0].headers
    assert records[0].header("missing") is None
    assert records[0].json == {"model": "a", "messages": MESSAGES}
    assert (records[0].method, records[0].path, records[0].answered_status) == (
        "POST", "/v1/chat/completions", 200)
    assert not records[0].stream and not records[0].disconnected
    assert gw.requests_for("b") == [records[1]]
    records.clear()
    assert len(gw.requests) == 2  # a copy


def test_32_concurrent_clients_are_all_answered(http):
    clients = 32
    barrier = threading.Barrier(clients, timeout=10)

    def call(i):
        with requests.Session() as session:
            session.trust_env = False
            barrier.wait()
            response = session.post(gw.base_url + "/chat/completions", timeout=10,
                                    json={"model": "m%d" % i, "messages": MESSAGES})
            return response.status_code, response.json()["model"]

    with FakeGateway(latency=0.05) as gw:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(call, range(clients)))
        assert len(gw.requests) == clients
    assert results == [(200, "m%d" % i) for i in range(clients)]


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"host": "0.0.0.0"}, {"host": "example.com"},
                                    {"latency": -1}, {"port": 70000},
                                    {"model_latency": {"m": float("nan")}}])
def test_bad_gateway_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        FakeGateway(**kwargs)


@pytest.mark.parametrize("kwargs", [{"status": 99}, {"delay": -0.1}, {"usage": True},
                                    {"cut_after": -1}, {"body": 5}, {"body": "x", "json": {}},
                                    {"stream_chunks": "abc"}, {"tool_calls": ["f"]}])
def test_bad_reply_fields_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Reply(**kwargs)


def test_script_refuses_values_that_are_not_replies(gw):
    with pytest.raises(TypeError):
        gw.script(MODEL, {"content": "x"})


# -- subprocess mode -----------------------------------------------------------------------------


def _spawn(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.Popen([sys.executable, "-m", "llmroute.testing", *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _reap(process):
    if process.poll() is None:
        process.kill()
    process.wait(timeout=5)
    for pipe in (process.stdin, process.stdout, process.stderr):
        pipe.close()


def _first_line(process, timeout=10.0):
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the fake gateway printed nothing within %ss" % timeout
    return process.stdout.readline().decode().strip()


def test_subprocess_prints_base_url_answers_and_stops_on_sigterm(http):
    process = _spawn("--port", "0", "--latency", "0.01", "--api-key", "k")
    try:
        base_url = _first_line(process)
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        response = http.post(base_url + "/chat/completions", timeout=5,
                             headers={"Authorization": "Bearer k"},
                             json={"model": MODEL, "messages": MESSAGES})
        assert response.status_code == 200 and content_of(response).startswith("[fake:")
        process.terminate()
        assert process.wait(timeout=5) == 0
    finally:
        _reap(process)


def test_subprocess_stops_when_stdin_closes():
    process = _spawn("--port", "0")
    try:
        assert _first_line(process).startswith("http://127.0.0.1:")
        process.stdin.close()
        assert process.wait(timeout=5) == 0
    finally:
        _reap(process)


def test_subprocess_refuses_a_non_loopback_host():
    process = _spawn("--host", "0.0.0.0")
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert b"loopback" in stderr


# -- methods, paths and headers every client meets ---------------------------------------------


def raw_exchange(gw, data, timeout=5):
    """Send raw bytes, return everything the gateway answers until it closes the connection."""
    import socket

    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize("method, path, status, allow", [
    ("HEAD", "/v1/chat/completions", 405, "POST"), ("OPTIONS", "/v1/chat/completions", 405, "POST"),
    ("PUT", "/v1/models", 405, "GET"), ("PROPFIND", "/v1/models/x", 405, "GET"),
    ("HEAD", "/v1/nothing", 404, None), ("OPTIONS", "/", 404, None), ("BREW", "/pot", 404, None),
])
def test_unsupported_methods_and_paths_get_json_errors_with_content_length(gw, method, path,
                                                                           status, allow):
    connection = HTTPConnection("127.0.0.1", gw.port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == status
        assert response.getheader("Content-Type") == "application/json"
        assert response.getheader("Allow") == allow
        assert response.getheader("Date")
        length = int(response.getheader("Content-Length"))
        if method == "HEAD":
            assert body == b"" and length > 0  # the length of the error it would send
        else:
            assert len(body) == length and json.loads(body)["error"]["type"]
        connection.request("POST", "/v1/chat/completions",
                           json.dumps({"model": MODEL, "messages": MESSAGES}),
                           {"Content-Type": "application/json"})
        follow_up = connection.getresponse()  # the same connection still works after a HEAD
        assert follow_up.status == 200 and json.loads(follow_up.read())["model"] == MODEL
    finally:
        connection.close()
    assert [r.answered_status for r in gw.requests] == [status, 200]


def test_a_request_http_server_cannot_parse_gets_a_json_error(gw):
    answer = raw_exchange(gw, b"GARBAGE\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head and b"Date: " in head
    assert json.loads(body)["error"]["message"]
    assert (b"Content-Length: %d" % len(body)) in head


def test_every_response_carries_a_date_header(http):
    with FakeGateway(api_key="k") as gw:
        gw.script(MODEL, Reply(status=503))
        headers = {"Authorization": "Bearer k"}
        responses = [http.post(gw.base_url + "/chat/completions", json={"model": MODEL,
                                                                        "messages": MESSAGES},
                               headers=headers, timeout=5) for _ in range(2)]
        responses.append(http.get(gw.base_url + "/models", timeout=5))  # 401: no key
        responses.append(http.get(gw.base_url + "/nowhere", headers=headers, timeout=5))
        with http.post(gw.base_url + "/chat/completions", stream=True, headers=headers, timeout=5,
                       json={"model": MODEL, "messages": MESSAGES, "stream": True}) as streamed:
            streamed.content  # noqa: B018 - read the whole stream
            responses.append(streamed)
    assert [r.status_code for r in responses] == [503, 200, 401, 404, 200]
    assert all(r.headers["Date"].endswith(" GMT") for r in responses)


def test_models_id_returns_a_known_model_and_a_404_for_an_unknown_one(http):
    with FakeGateway(models=["a", "org/b"]) as gw:
        known = http.get(gw.base_url + "/models/a", timeout=5)
        slashed = http.get(gw.base_url + "/models/org%2Fb", timeout=5)
        unknown = http.get(gw.base_url + "/models/zzz", timeout=5)
    assert known.status_code == 200 and known.json() == {
        "id": "a", "object": "model", "created": 0, "owned_by": "llmroute-fake"}
    assert slashed.json()["id"] == "org/b"
    assert unknown.status_code == 404 and unknown.json() == {"error": {
        "message": "The model 'zzz' does not exist", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found"}}
    assert int(unknown.headers["Content-Length"]) == len(unknown.content)


@pytest.mark.parametrize("n", [0, 129, True, "2", 1.5])
def test_a_bad_n_gets_400_naming_it(gw, http, n):
    response = chat(http, gw, n=n)
    assert response.status_code == 400 and "n must be" in response.json()["error"]["message"]


def test_n_choices_are_answered_and_streamed_with_indexes(gw, http):
    data = chat(http, gw, n=3).json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    with stream(http, gw, n=2) as response:
        events = sse_events(response)[:-1]
    assert {c["index"] for e in events for c in e["choices"]} == {0, 1}


def test_scripted_429_message_names_the_scripted_wait(gw, http):
    gw.script(MODEL, Reply(status=429, headers={"retry-after-ms": "1500"}), Reply(status=429))
    assert chat(http, gw).json()["error"]["message"].endswith("Please try again in 1500ms.")
    assert chat(http, gw).json()["error"]["message"].endswith("Please try again later.")


# -- credentials in the request log ------------------------------------------------------------


def test_credentials_are_redacted_in_the_log_and_checked_with_bearer_matches(gw, http):
    key = "sk-live-secret-4242"
    http.post(gw.base_url + "/chat/completions", timeout=5, json={"model": MODEL,
                                                                  "messages": MESSAGES},
              headers={"Authorization": "Bearer " + key, "api-key": key,
                       "X-Api-Key": key, "Proxy-Authorization": "Basic dXNlcjpwYXNz"})
    chat(http, gw)
    sent, anonymous = gw.requests
    assert sent.header("authorization") == "Bearer [REDACTED]"
    assert sent.header("api-key") == sent.header("x-api-key") == "[REDACTED]"
    assert sent.header("proxy-authorization") == "Basic [REDACTED]"
    assert sent.bearer_matches(key) and sent.bearer_matches(" %s\n" % key)
    assert not sent.bearer_matches(key[:-1]) and not sent.bearer_matches("")
    assert not anonymous.bearer_matches(key)
    for shown in (repr(sent), str(sent), repr(gw), repr(gw.requests)):
        assert key not in shown and "dXNlcjpwYXNz" not in shown
    with pytest.raises(ValueError, match="key"):
        sent.bearer_matches(None)


def test_api_key_check_takes_any_case_of_the_bearer_scheme_and_no_other(http):
    with FakeGateway(api_key="k1") as gw:
        body = {"model": MODEL, "messages": MESSAGES}
        statuses = [http.post(gw.base_url + "/chat/completions", json=body, timeout=5,
                              headers={"Authorization": value}).status_code
                    for value in ("bearer k1", "BEARER  k1", "Basic k1", "k1", "Bearer")]
        assert statuses == [200, 200, 401, 401, 401]
        assert [r.bearer_matches("k1") for r in gw.requests] == [True, True, False, False, False]
        assert "k1" not in repr(gw)


@pytest.mark.parametrize("key", [123, b"k", "", "  "])
def test_an_api_key_that_is_not_a_non_empty_string_is_refused(key):
    with pytest.raises(ValueError, match="api_key"):
        FakeGateway(api_key=key)


# -- the concurrency counter ---------------------------------------------------------------------


def chat_on_own_session(gw):
    with requests.Session() as session:
        session.trust_env = False
        return chat(session, gw)


def held_until(release):
    """A responder that keeps each request in flight until ``release`` is set."""
    return lambda request: None if release.wait(5) else Reply(status=500)


def test_max_in_flight_counts_the_requests_served_at_once():
    clients = 4
    release = threading.Event()
    with FakeGateway(responder=held_until(release)) as gw:
        with ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(chat_on_own_session, gw) for _ in range(clients)]
            assert gw.wait_for_in_flight(clients, timeout=5)
            assert gw.in_flight == gw.max_in_flight == clients
            release.set()
            assert [f.result().status_code for f in futures] == [200] * clients
        assert gw.max_in_flight == clients and gw.in_flight == 0


def test_sequential_requests_and_streams_never_count_twice(gw, http):
    for i in range(10):
        assert chat(http, gw).status_code == 200
        with stream(http, gw) as response:
            assert sse_events(response)[-1] is None
    gw.script(MODEL, Reply(drop=True), Reply(status=500))
    with pytest.raises(requests.exceptions.ConnectionError):
        chat(http, gw)
    assert chat(http, gw).status_code == 500
    assert len(gw.requests) == 22 and gw.max_in_flight == 1 and gw.in_flight == 0


def test_reset_restarts_the_peak_at_what_is_in_flight():
    release = threading.Event()
    with FakeGateway(responder=held_until(release)) as gw:
        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(chat_on_own_session, gw) for _ in range(2)]
            assert gw.wait_for_in_flight(2, timeout=5)
            release.set()
            assert [f.result().status_code for f in held] == [200, 200]
            release.clear()
            slow = pool.submit(chat_on_own_session, gw)
            assert gw.wait_for_in_flight(1, timeout=5)
            assert gw.max_in_flight == 2
            gw.reset()
            assert gw.max_in_flight == gw.in_flight == 1 and gw.requests == []
            release.set()
            assert slow.result().status_code == 200
        assert gw.in_flight == 0 and gw.max_in_flight == 1


# -- layout ------------------------------------------------------------------------------------


def test_no_testing_module_reads_another_modules_private_attributes():
    """Each module of llmroute.testing touches only its own `_names` (issue 10)."""
    import ast
    import pathlib

    import llmroute.testing as package

    folder = pathlib.Path(package.__file__).parent
    trees = {path.name: ast.parse(path.read_text()) for path in folder.glob("*.py")}
    problems = []
    for name, tree in trees.items():
        own = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in own):
                problems.append("%s:%d reads .%s" % (name, node.lineno, node.attr))
    assert problems == []
