"""RetryPolicy as a table, then the client's retry loop with recorded sleeps (fake clock)."""
from __future__ import annotations

import dataclasses
from email.utils import formatdate

import pytest
import responses

import llmroute
from llmroute.retry import RetryPolicy

BASE = "http://gateway.test/v1"
URL = BASE + "/chat/completions"
OK = {"id": "x", "model": "gpt-5.4", "choices": [{"index": 0, "message": {
    "role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
MESSAGES = [{"role": "user", "content": "hello"}]
NO_JITTER = RetryPolicy(jitter=0.0)


def make_client(clock, retry=NO_JITTER):
    return llmroute.Client(BASE, "sk-test-key-000000", retry=retry, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize("retry_number, expected", [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0),
                                                    (7, 30.0), (10_000, 30.0)])
def test_backoff_doubles_from_half_a_second_and_is_capped(retry_number, expected):
    assert NO_JITTER.backoff(retry_number) == expected


def test_backoff_jitter_stays_within_a_quarter():
    policy = RetryPolicy()
    assert policy.backoff(1, rand=lambda: 0.0) == pytest.approx(0.375)
    assert policy.backoff(1, rand=lambda: 1.0) == pytest.approx(0.625)


@pytest.mark.parametrize("status, headers, retryable", [
    (503, {}, True), (429, {}, True), (408, {}, True), (409, {}, True), (500, {}, True),
    (503, {"x-should-retry": "false"}, False),
    (401, {"x-should-retry": "true"}, False),
    (400, {"x-should-retry": "true"}, False),
    (418, {"x-should-retry": "true"}, True),
    (418, {}, False), (404, {}, False), (422, {}, False),
])
def test_which_statuses_are_retried(status, headers, retryable):
    assert RetryPolicy().is_retryable_status(status, headers) is retryable


@pytest.mark.parametrize("kwargs", [dict(max_retries=-1), dict(initial_delay=-1),
                                    dict(max_delay=float("inf")), dict(jitter=2),
                                    dict(deadline=0), dict(multiplier=0.5)])
def test_policy_refuses_bad_values(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_policy_is_frozen_and_varied_with_replace():
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_retries = 5
    assert dataclasses.replace(policy, max_retries=5).max_retries == 5


def _http_date(offset):
    return formatdate(1_800_000_000 + offset, usegmt=True)


# (first reply status, its headers) -> the sleeps recorded before the 200, and requests made.
SLEEP_TABLE = [
    pytest.param(429, {"retry-after-ms": "1500", "Retry-After": "5"}, [5.0], 2,
                 id="the longest of retry-after-ms and Retry-After wins"),
    pytest.param(429, {"Retry-After": _http_date(3), "Date": _http_date(0)}, [3.0], 2,
                 id="HTTP date 3 s ahead of the response Date"),
    pytest.param(503, {"Retry-After": "2"}, [2.0], 2, id="503 with Retry-After"),
    pytest.param(503, {}, [0.5], 2, id="backoff without headers"),
]


@pytest.mark.parametrize("status, headers, sleeps, calls", SLEEP_TABLE)
@responses.activate
def test_recorded_sleeps_follow_the_server(clock, status, headers, sleeps, calls):
    responses.add(responses.POST, URL, status=status, headers=headers, json={"error": {}})
    responses.add(responses.POST, URL, json=OK)
    result = make_client(clock).chat("gpt-5.4", MESSAGES)
    assert clock.sleeps == pytest.approx(sleeps)
    assert len(responses.calls) == calls
    assert result.attempts == calls


@responses.activate
def test_backoff_without_headers_is_half_one_two_seconds(clock):
    for _ in range(3):
        responses.add(responses.POST, URL, status=502)
    responses.add(responses.POST, URL, json=OK)
    result = make_client(clock, RetryPolicy()).chat("gpt-5.4", MESSAGES)
    assert result.attempts == 4
    for slept, nominal in zip(clock.sleeps, [0.5, 1.0, 2.0]):
        assert nominal * 0.75 <= slept <= nominal * 1.25


@responses.activate
def test_should_retry_false_on_503_sends_one_request(clock):
    responses.add(responses.POST, URL, status=503, headers={"x-should-retry": "false"})
    with pytest.raises(llmroute.InternalServerError):
        make_client(clock).chat("gpt-5.4", MESSAGES)
    assert len(responses.calls) == 1 and clock.sleeps == []


@responses.activate
def test_should_retry_true_never_overrides_401(clock):
    responses.add(responses.POST, URL, status=401, headers={"x-should-retry": "true"})
    with pytest.raises(llmroute.AuthenticationError):
        make_client(clock).chat("gpt-5.4", MESSAGES)
    assert len(responses.calls) == 1 and clock.sleeps == []


@responses.activate
def test_does_not_wait_past_the_retry_after_cap(clock):
    responses.add(responses.POST, URL, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(llmroute.RateLimitError) as info:
        make_client(clock).chat("gpt-5.4", MESSAGES)
    assert info.value.retry_after == 3600
    assert clock.sleeps == [] and len(responses.calls) == 1


@responses.activate
def test_gives_up_after_max_retries_with_the_last_error(clock):
    for _ in range(4):
        responses.add(responses.POST, URL, status=500)
    with pytest.raises(llmroute.InternalServerError):
        make_client(clock).chat("gpt-5.4", MESSAGES)
    assert len(responses.calls) == 4 and len(clock.sleeps) == 3


@responses.activate
def test_a_wait_past_the_deadline_is_not_slept(clock):
    responses.add(responses.POST, URL, status=503, headers={"Retry-After": "5"})
    with pytest.raises(llmroute.InternalServerError) as info:
        make_client(clock).chat("gpt-5.4", MESSAGES, deadline=3)
    assert info.value.retry_after == 5
    assert clock.sleeps == [] and len(responses.calls) == 1


@responses.activate
def test_connection_errors_are_retried_with_the_same_idempotency_key(clock):
    import requests

    responses.add(responses.POST, URL, body=requests.ConnectionError("reset by peer"))
    responses.add(responses.POST, URL, json=OK)
    result = make_client(clock).chat("gpt-5.4", MESSAGES)
    assert result.attempts == 2
    keys = {call.request.headers["Idempotency-Key"] for call in responses.calls}
    assert len(keys) == 1
