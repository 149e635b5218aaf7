"""Retries a careful user can reason about: two switches, one shorthand, logs at the right level."""
from __future__ import annotations

import dataclasses
import logging

import pytest

import llmroute
from _servers import completion, head, respond

KEY = "sk-test-switches-0000"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def test_the_shorthand_sets_both_switches():
    policy = llmroute.RetryPolicy(retry_connection_errors=False)
    assert policy.retry_connect_errors is False and policy.retry_sent_errors is False
    assert dataclasses.replace(policy, retry_sent_errors=True).retry_sent_errors is True
    default = llmroute.RetryPolicy()
    assert default.retry_connect_errors is True and default.retry_sent_errors is True


@pytest.mark.parametrize("other", ["retry_connect_errors", "retry_sent_errors"])
def test_the_shorthand_with_either_switch_is_a_value_error(other):
    with pytest.raises(ValueError, match="retry_connection_errors"):
        llmroute.RetryPolicy(retry_connection_errors=True, **{other: False})


@pytest.mark.parametrize("field,value", [
    ("multiplier", float("nan")), ("multiplier", True), ("max_retries", True),
    ("max_retries", 1.0), ("initial_delay", "1"), ("max_delay", float("inf")),
    ("jitter", float("nan")), ("deadline", "5"), ("deadline", True),
    ("retry_sent_errors", 1), ("retry_statuses", "429"), ("max_retry_after", -1)])
def test_bad_policy_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        llmroute.RetryPolicy(**{field: value})


def reset_then_ok(conn, request, server):
    if len(server.requests) == 1:
        body = completion()
        conn.sendall(head(200, ["Connection: close"], len(body)) + body[:5])
    else:
        respond(conn, completion("second"))


def test_a_failure_after_sending_is_not_retried_when_its_switch_is_off(serve):
    server = serve(reset_then_ok)
    policy = llmroute.RetryPolicy(initial_delay=0.01, retry_sent_errors=False)
    with llmroute.Client(server.base_url, KEY, retry=policy) as client:
        with pytest.raises(llmroute.APIConnectionError) as info:
            client.chat("gpt-5.4", MESSAGES)
    assert info.value.request_sent and len(server.requests) == 1
    assert info.value.attempt_log[0].reason == "not retryable"


def test_a_normal_retry_logs_at_info_and_giving_up_at_warning(serve, caplog):
    server = serve(lambda conn, request, srv: respond(conn, b'{"error": {}}', status=503))
    policy = llmroute.RetryPolicy(max_retries=2, initial_delay=0.01, jitter=0)
    with caplog.at_level(logging.INFO, logger="llmroute"):
        with llmroute.Client(server.base_url, KEY, retry=policy) as client:
            with pytest.raises(llmroute.InternalServerError) as info:
                client.chat("gpt-5.4", MESSAGES)
    levels = [(r.levelname, "giving up" in r.getMessage()) for r in caplog.records
              if "attempt" in r.getMessage()]
    assert levels == [("INFO", False), ("INFO", False), ("WARNING", True)]
    assert [a.wait for a in info.value.attempt_log] == [0.01, 0.02, 0.0]
