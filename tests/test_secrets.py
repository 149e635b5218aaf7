"""The API key (and credentials in a base URL) never show: not in messages, reprs, causes,
tracebacks, logs or results, on any path."""
from __future__ import annotations

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
