"""The client's own adapter is driven straight through its urllib3 pool: the same request on
the wire, the same errors and the same fallbacks as going through ``HTTPAdapter.send``."""
from __future__ import annotations

import pickle
import socket

import pytest
import requests
import responses

import llmroute
import llmroute._completion as completion_module
import llmroute._transport as transport_module
import llmroute.limits as limits_module
from llmroute._headers import (RateLimitInfo, parse_lowered_rate_limit,
                               parse_rate_limit_headers)
from llmroute.results import ChatResult, Deferred

from _servers import RawServer, completion, head

KEY = "sk-direct-test-0123456789"
MESSAGES = [{"role": "user", "content": "hello"}]
RATE_HEADERS = ("x-request-id: req-7", "x-ratelimit-remaining-requests: 41",
                "x-ratelimit-remaining-tokens: 9000", "x-ratelimit-reset-tokens: 6ms")


def answer(conn, request, server):
    body = completion("hi")
    conn.sendall(head(200, RATE_HEADERS, len(body)) + body)


def wire(server, index=-1):
    """The header lines of a recorded request, by lower-case name, a name sent twice kept twice."""
    lines = server.requests[index].header_lines
    return [(name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines)]


@pytest.fixture
def server():
    with RawServer(answer) as raw:
        yield raw


def test_direct_and_adapter_paths_send_the_same_request(server):
    session = requests.Session()
    session.headers.clear()  # a given session's headers are sent too: none here
    own = llmroute.Client(server.base_url, KEY)
    given = llmroute.Client(server.base_url, KEY, session=session)
    assert own.transport.direct and not given.transport.direct
    for client in (own, given):
        result = client.chat("gpt-5.4", MESSAGES, temperature=0, idempotency_key="idem-1",
                             extra_headers={"X-Trace": "t-1"})
        assert result.content == "hi" and result.request_id == "req-7"
    first, second = (dict(wire(server, i)) for i in (0, 1))
    assert first == second
    assert server.requests[0].line == server.requests[1].line == "POST /v1/chat/completions HTTP/1.1"
    assert server.requests[0].body == server.requests[1].body
    assert first["idempotency-key"] == "idem-1" and first["x-trace"] == "t-1"
    assert first["authorization"] == "Bearer " + KEY


def test_extra_headers_replace_defaults_whatever_their_case_and_never_go_twice(server):
    client = llmroute.Client(server.base_url, KEY, default_headers={"X-Team": "a"})
    client.chat("gpt-5.4", MESSAGES, extra_headers={
        "user-agent": "mine/1", "x-team": "b", "idempotency-key": "ignored",
        "content-length": "1"}, idempotency_key="idem-2")
    names = [name for name, _ in wire(server)]
    assert len(names) == len(set(names)), names
    sent = dict(wire(server))
    assert sent["user-agent"] == "mine/1" and sent["x-team"] == "b"
    assert sent["idempotency-key"] == "idem-2"  # the loop's own value, as before
    assert sent["content-length"] == str(len(server.requests[-1].body))


@responses.activate
def test_a_test_library_patching_the_adapter_still_sees_every_call():
    responses.add(responses.POST, "http://mocked.test/v1/chat/completions",
                  json={"choices": [{"message": {"content": "mocked"}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    client = llmroute.Client("http://mocked.test/v1", KEY)
    assert client.chat("gpt-5.4", MESSAGES).content == "mocked"
    assert len(responses.calls) == 1


def test_after_the_patch_is_gone_calls_go_direct_again(server):
    client = llmroute.Client(server.base_url, KEY)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, server.base_url + "/chat/completions",
                 json={"choices": [{"message": {"content": "mocked"}}]})
        assert client.chat("gpt-5.4", MESSAGES).content == "mocked"
    assert client.chat("gpt-5.4", MESSAGES).content == "hi"
    assert len(server.requests) == 1


def test_a_refused_connection_reads_the_same_on_both_paths():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = "http://127.0.0.1:%d/v1" % port
    errors = []
    for session in (None, requests.Session()):
        client = llmroute.Client(url, KEY, session=session,
                                 retry=llmroute.RetryPolicy(max_retries=0))
        with pytest.raises(llmroute.APIConnectionError) as info:
            client.chat("gpt-5.4", MESSAGES)
        errors.append(info.value)
    assert [type(e) for e in errors] == [llmroute.APIConnectionError] * 2
    assert [e.request_sent for e in errors] == [False, False]
    assert str(errors[0]) == str(errors[1])
    assert "ConnectionError" in str(errors[0])
    assert errors[0].__cause__ is None and errors[0].__context__ is None


def test_a_read_timeout_reads_the_same_on_both_paths():
    def silent(conn, request, server):
        server.pause(2)

    messages = []
    with RawServer(silent) as slow:
        for session in (None, requests.Session()):
            client = llmroute.Client(slow.base_url, KEY, session=session, timeout=(1, 0.2),
                                     retry=llmroute.RetryPolicy(max_retries=0))
            with pytest.raises(llmroute.APITimeoutError) as info:
                client.chat("gpt-5.4", MESSAGES)
            assert info.value.request_sent is True
            messages.append(str(info.value))
    assert messages[0] == messages[1] and "ReadTimeout" in messages[0]


def test_a_pool_closed_under_the_client_is_found_again(server):
    client = llmroute.Client(server.base_url, KEY)
    assert client.chat("gpt-5.4", MESSAGES).content == "hi"
    client.transport.adapter.poolmanager.clear()  # what evicting the pool does: it is closed
    assert client.chat("gpt-5.4", MESSAGES).content == "hi"
    client.ensure_pool(64)  # a new adapter: its own pool
    assert client.chat("gpt-5.4", MESSAGES).content == "hi"
    assert len(server.requests) == 3


def count_parses(monkeypatch):
    calls = []

    def counting(parse):
        def parse_counted(headers):
            calls.append(1)
            return parse(headers)
        return parse_counted

    for module in (transport_module, completion_module):
        monkeypatch.setattr(module, "parse_lowered_rate_limit",
                            counting(parse_lowered_rate_limit))
    monkeypatch.setattr(limits_module, "parse_rate_limit_headers",
                        counting(parse_rate_limit_headers))
    return calls


@pytest.mark.parametrize("headers", [
    {}, {"x-request-id": "r"}, {"x-ratelimit-remaining-requests": "5"},
    {"x-ratelimit-remaining-requests": "-1", "x-ratelimit-reset-requests": "1m30s"},
    {"x-ratelimit-remaining-tokens": "garbage", "x-ratelimit-limit-tokens": "10.0"},
    {"x-ratelimit-remaining-requests": "9", "llm_provider-x-ratelimit-remaining-requests": "3",
     "x-ratelimit-reset-tokens": "2s", "llm_provider-x-ratelimit-reset-tokens": "6ms"},
    {"x-ratelimit-reset-requests": "  ", "x-ratelimit-limit-requests": "1" * 70},
    {"x-ratelimit-remaining-requests": "12345678901234567890"},
])
def test_the_lowered_parse_reads_what_the_general_parse_reads(headers):
    assert parse_lowered_rate_limit(headers) == parse_rate_limit_headers(headers)


def test_rate_limit_headers_are_parsed_only_when_read(server, monkeypatch):
    calls = count_parses(monkeypatch)
    result = llmroute.Client(server.base_url, KEY).chat("gpt-5.4", MESSAGES)
    assert calls == []
    expected = RateLimitInfo(remaining_requests=41, remaining_tokens=9000, reset_tokens=0.006)
    assert result.rate_limit == expected and result.rate_limit == expected
    assert calls == [1]


def test_with_a_limiter_the_headers_are_parsed_once_for_it_and_the_result(server, monkeypatch):
    calls = count_parses(monkeypatch)
    limiter = llmroute.RateLimiter(rpm=600, tpm=10 ** 6, headers_scope="key")
    result = llmroute.Client(server.base_url, KEY, limiter=limiter).chat("gpt-5.4", MESSAGES)
    assert result.rate_limit.remaining_requests == 41
    assert calls == [1]
    assert limiter.requests_bucket.level < 42  # lowered to 41 by the same parse


def test_a_result_with_a_deferred_rate_limit_behaves_as_a_plain_value():
    headers = {"x-ratelimit-remaining-requests": "3"}
    lazy = ChatResult("a", "m", None, None, None, 1.0,
                      rate_limit=Deferred(parse_rate_limit_headers, headers))
    eager = ChatResult("a", "m", None, None, None, 1.0,
                       rate_limit=parse_rate_limit_headers(headers))
    assert pickle.loads(pickle.dumps(lazy)) == lazy == eager and hash(lazy) == hash(eager)
    assert repr(lazy) == repr(eager)
    with pytest.raises(AttributeError):
        lazy.rate_limit = None
    assert ChatResult("a", "m", None, None, None, 1.0).rate_limit is None
