"""The API key (and credentials in a base URL) never show: not in messages, reprs, causes,
tracebacks, logs or results, on any path."""
from __future__ import annotations

import json
import logging
import socket
import traceback

import pytest

import llmroute
from _servers import completion, respond

KEY = "sk-secret-transport-7f3a9c1e55"
PASSWORD = "hunter2-url-password"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def everything_shown(error):
    """All text an error can show: message, repr, the formatted chain with tracebacks."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)) \
        + repr(error) + str(getattr(error, "body", "")) + str(getattr(error, "headers", ""))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_key_read_with_a_trailing_newline_is_stripped(serve):
    server = serve(lambda conn, request, srv: respond(conn, completion()))
    with llmroute.Client(server.base_url, "  " + KEY + " \n") as client:
        client.chat("gpt-5.4", MESSAGES)
    assert server.requests[0].headers["authorization"] == "Bearer " + KEY


@pytest.mark.parametrize("bad", [KEY[:10] + "\n" + KEY[10:], KEY + "\x00", KEY[:8] + "\u2028x",
                                 KEY + "\u20ac", KEY[:6] + "\t" + KEY[6:]])
def test_a_key_with_a_control_or_non_latin1_character_is_refused_without_showing_it(bad):
    with pytest.raises(llmroute.ConfigError, match="api_key") as info:
        llmroute.Client("http://127.0.0.1:9/v1", bad)
    assert KEY[:8] not in everything_shown(info.value)


def test_credentials_in_the_base_url_are_redacted_everywhere(caplog):
    url = "http://gateway-user:%s@127.0.0.1:%d/v1" % (PASSWORD, free_port())
    policy = llmroute.RetryPolicy(max_retries=1, initial_delay=0.01)
    with caplog.at_level(logging.DEBUG, logger="llmroute"):
        with llmroute.Client(url, KEY, retry=policy) as client:
            assert PASSWORD not in repr(client) and PASSWORD not in client.base_url
            assert "[REDACTED]" in client.base_url
            with pytest.raises(llmroute.APIConnectionError) as info:
                client.chat("gpt-5.4", MESSAGES)
    shown = everything_shown(info.value) + caplog.text
    assert PASSWORD not in shown and KEY not in shown
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("status", [401, 200, 500])
def test_a_server_echoing_the_key_never_gets_it_shown(serve, caplog, status):
    def echo(conn, request, server):
        text = ('{"error": {"message": "bad key %s"}}' % request.headers["authorization"]
                if status != 200 else "not json: %s" % request.headers["authorization"])
        respond(conn, text.encode(), status=status,
                headers=["X-Echo: " + request.headers["authorization"]])

    server = serve(echo)
    policy = llmroute.RetryPolicy(max_retries=1, initial_delay=0.01)
    with caplog.at_level(logging.DEBUG, logger="llmroute"):
        with llmroute.Client(server.base_url, KEY, retry=policy) as client:
            with pytest.raises(llmroute.LLMRouteError) as info:
                client.chat("gpt-5.4", MESSAGES)
    assert KEY not in everything_shown(info.value) + caplog.text


def test_a_header_value_http_client_would_refuse_is_refused_without_quoting_it():
    with llmroute.Client("http://127.0.0.1:9/v1", KEY) as client:
        with pytest.raises(ValueError, match="X-Token") as info:
            client.chat("gpt-5.4", MESSAGES, extra_headers={"X-Token": KEY + "\r\nX-Evil: 1"})
    assert KEY not in everything_shown(info.value)
    with pytest.raises(ValueError, match="X-Token") as info:
        llmroute.Client("http://127.0.0.1:9/v1", KEY, default_headers={"X-Token": KEY + "\n"})
    assert KEY not in everything_shown(info.value)


@pytest.mark.parametrize("where", ["default_headers", "extra_headers"])
def test_a_header_value_of_none_is_refused_naming_the_header(where):
    if where == "default_headers":
        with pytest.raises(ValueError, match=r"default_headers\['X-Team'\]"):
            llmroute.Client("http://127.0.0.1:9/v1", KEY, default_headers={"X-Team": None})
        return
    with llmroute.Client("http://127.0.0.1:9/v1", KEY) as client:
        with pytest.raises(ValueError, match=r"extra_headers\['X-Team'\]"):
            client.chat("gpt-5.4", MESSAGES, extra_headers={"X-Team": None})


def test_results_and_reprs_never_hold_the_key(serve):
    server = serve(lambda conn, request, srv: respond(conn, completion()))
    with llmroute.Client(server.base_url, KEY) as client:
        result = client.chat("gpt-5.4", MESSAGES)
        assert KEY not in repr(client) and KEY not in repr(client.transport.__dict__.keys())
    assert KEY not in repr(result) and KEY not in repr(result.attempt_log)


def test_a_bad_header_of_a_callers_session_is_refused_without_quoting_it():
    import requests

    session = requests.Session()
    session.headers["X-Token"] = KEY + "\n"
    with pytest.raises(ValueError, match="session.headers") as info:
        llmroute.Client("http://127.0.0.1:9/v1", KEY, session=session)
    assert KEY not in everything_shown(info.value)


def test_usage_takes_a_keyword_conninfo_as_postgres_and_never_prints_its_password():
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("psycopg")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "llmroute", "usage", "--ledger",
         "host=127.0.0.1 port=1 password=hunter2 dbname=x"], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(root)), timeout=30)
    assert done.returncode == 2
    assert "postgresql://127.0.0.1:1/x" in done.stderr  # recognised as PostgreSQL, not a file
    assert "hunter2" not in done.stdout + done.stderr, done.stderr


def test_a_ledger_error_never_echoes_a_password_in_the_target(tmp_path):
    from llmroute.ledger import Ledger, LedgerError

    with pytest.raises(LedgerError) as info:
        Ledger(str(tmp_path / "no such password=hunter2"), create=False)
    assert "hunter2" not in str(info.value) and "password=***" in str(info.value)


SLASH_KEY = "Zq81/Xv4+Lm0/Pt7Ws2/Ye9"  # a base64-style key: '/' and '+' are common


def _client(server, key=KEY):
    return llmroute.Client(server.base_url, key, timeout=(2, 2),
                           retry=llmroute.RetryPolicy(max_retries=0))


def test_a_key_echoed_with_json_escapes_is_never_shown_in_a_status_error(serve):
    # PHP's json_encode and some proxies write '/' as '\/': whole again only once decoded.
    def handler(conn, request, server):
        sent = request.headers["authorization"].split(" ", 1)[1]
        body = ('{"error": {"message": "Incorrect API key provided: %s"}}'
                % sent.replace("/", "\\/")).encode()
        respond(conn, body, status=401)

    server = serve(handler)
    with _client(server, SLASH_KEY) as client:
        with pytest.raises(llmroute.errors.AuthenticationError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    assert "Incorrect API key provided: [REDACTED]" in str(caught.value)
    assert SLASH_KEY not in everything_shown(caught.value)


@pytest.mark.parametrize("escape", [False, True])
def test_chat_result_raw_never_holds_a_key_the_server_echoed(serve, escape):
    def handler(conn, request, server):
        body = json.loads(completion())
        body["echo"] = {"authorization": request.headers["authorization"]}
        text = json.dumps(body)
        respond(conn, (text.replace("/", "\\/") if escape else text).encode())

    server = serve(handler)
    with _client(server, SLASH_KEY) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert SLASH_KEY not in json.dumps(result.raw)
    assert result.raw["echo"]["authorization"] == "Bearer [REDACTED]"
    assert result.content == "hello"


def test_the_not_json_excerpt_never_shows_part_of_a_key_at_the_cut(serve):
    def handler(conn, request, server):
        sent = request.headers["authorization"].split(" ", 1)[1]
        respond(conn, b"<" * 190 + sent.encode())

    server = serve(handler)
    with _client(server, SLASH_KEY) as client:
        with pytest.raises(llmroute.errors.InvalidResponseError) as caught:
            client.chat("gpt-5.4", MESSAGES)
    assert SLASH_KEY[:6] not in str(caught.value)
    assert SLASH_KEY[:6] not in caught.value.body


@pytest.mark.parametrize("name, value", [
    ("Authorization", "Bearer Uk7/Gh3+Wd9/Lo2Qe5Rt8"),
    ("api-key", "Uk7/Gh3+Wd9/Lo2Qe5Rt8"),
    ("X-Api-Key", "Uk7/Gh3+Wd9/Lo2Qe5Rt8"),
])
def test_a_key_given_per_call_in_extra_headers_is_redacted_too(serve, name, value):
    user_key = "Uk7/Gh3+Wd9/Lo2Qe5Rt8"

    def handler(conn, request, server):
        sent = request.headers[name.lower()]
        body = json.dumps({"error": {"message": "Incorrect API key provided: " + sent}})
        respond(conn, body.encode(), status=401, headers=["X-Echo-Key: " + sent])

    server = serve(handler)
    with _client(server) as client:
        with pytest.raises(llmroute.errors.AuthenticationError) as caught:
            client.chat("gpt-5.4", MESSAGES, extra_headers={name: value})
    assert server.requests[0].headers[name.lower()] == value
    assert user_key not in everything_shown(caught.value)
    assert user_key not in repr(caught.value.headers)


def test_config_error_for_a_bad_base_url_chains_nothing():
    # urlsplit's ValueError quotes the netloc, password included: it must not be on __context__.
    password = "s3cr\u2100etpass"  # U+2100 normalises to "a/c": urlsplit refuses the netloc
    with pytest.raises(llmroute.ConfigError) as caught:
        llmroute.Client("http://user:%s@127.0.0.1:1/v1" % password, KEY)
    assert password not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
