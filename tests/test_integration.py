"""The client against the package's own FakeGateway: real sockets on 127.0.0.1."""
from __future__ import annotations

import logging
import threading
import time

import pytest

import llmroute
from llmroute.testing import FakeGateway, Reply

KEY = "sk-integration-0123456789"
MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def gw():
    with FakeGateway() as gateway:
        yield gateway


def test_two_429s_then_200_is_one_result_after_three_attempts(gw, clock):
    gw.script("gpt-5.4", Reply(status=429, headers={"Retry-After": "1"}),
              Reply(status=429, headers={"Retry-After": "1"}), Reply(content="finally"))
    with llmroute.Client(gw.base_url, KEY, clock=clock, sleep=clock.sleep) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert result.content == "finally" and result.attempts == 3
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]  # each Retry-After waited
    keys = [r.header("Idempotency-Key") for r in gw.requests]
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]


def test_401_is_an_authentication_error_after_exactly_one_request(gw):
    gw.script("gpt-5.4", Reply(status=401))
    with llmroute.Client(gw.base_url, KEY) as client:
        with pytest.raises(llmroute.AuthenticationError):
            client.chat("gpt-5.4", MESSAGES)
    assert len(gw.requests) == 1


def test_gateway_api_key_check_gives_401():
    with FakeGateway(api_key="right-key") as gateway:
        with llmroute.Client(gateway.base_url, "wrong-key-123456") as client:
            with pytest.raises(llmroute.AuthenticationError) as info:
                client.chat("gpt-5.4", MESSAGES)
    assert "Invalid API key" in str(info.value)


def test_400_with_a_context_length_body_is_context_length_exceeded(gw):
    gw.script("gpt-5.4", Reply(status=400, json={"error": {
        "message": "This model's maximum context length is 200000 tokens. However, your "
                   "messages resulted in 210000 tokens.", "code": "context_length_exceeded"}}))
    with llmroute.Client(gw.base_url, KEY) as client:
        with pytest.raises(llmroute.ContextLengthExceededError) as info:
            client.chat("gpt-5.4", MESSAGES)
    assert info.value.status_code == 400 and len(gw.requests) == 1


def test_a_200_with_a_non_json_body_is_invalid_response(gw):
    gw.script("gpt-5.4", Reply(status=200, body="<html>upstream hiccup</html>"))
    with llmroute.Client(gw.base_url, KEY) as client:
        with pytest.raises(llmroute.InvalidResponseError):
            client.chat("gpt-5.4", MESSAGES)


def test_a_server_that_never_answers_times_out_within_the_deadline(gw, caplog):
    gw.responder = lambda request: Reply(delay=30)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="llmroute"):
        with llmroute.Client(gw.base_url, KEY, timeout=(0.3, 0.3)) as client:
            with pytest.raises(llmroute.APITimeoutError):
                client.chat("gpt-5.4", MESSAGES, deadline=0.75)
    elapsed = time.monotonic() - started
    assert elapsed < 0.75 + 1.0  # the deadline, plus a second for a loaded machine's scheduling
    attempts = len(gw.requests)
    assert 1 <= attempts <= 3
    logged = [r for r in caplog.records if "attempt" in r.getMessage()]
    assert len(logged) == attempts


def test_dropped_connections_are_retried(gw):
    gw.script("gpt-5.4", Reply(drop=True), Reply(content="second time lucky"))
    retry = llmroute.RetryPolicy(initial_delay=0.01, jitter=0)
    with llmroute.Client(gw.base_url, KEY, retry=retry) as client:
        result = client.chat("gpt-5.4", MESSAGES)
    assert result.content == "second time lucky" and result.attempts == 2


def test_max_tokens_is_honoured_with_finish_reason_length(gw):
    with llmroute.Client(gw.base_url, KEY) as client:
        result = client.chat("gpt-5.4", [{"role": "user", "content": "word " * 200}],
                             max_tokens=3)
    assert result.finish_reason == "length" and result.usage.completion_tokens == 3
    assert result.cost_usd > 0


def test_a_429_pause_is_shared_by_every_thread_for_that_model_only(gw):
    """8 threads, one limiter: after a 429 with retry-after-ms: 800 on model A, nothing reaches
    the server for A until the pause is over, while model B is still served. A request already
    on its way when the 429 arrived may land just after it: the first 0.25 s are not judged."""
    pause = 0.8
    limiter = llmroute.RateLimiter()
    gw.script("model-a", Reply(status=429, headers={"retry-after-ms": str(int(pause * 1000))}))
    retry = llmroute.RetryPolicy(initial_delay=0.01, jitter=0)
    stop = time.monotonic() + 2 * pause
    results, errors = [], []

    def worker(model):
        while time.monotonic() < stop and len(results) < 400:
            try:
                results.append(client.chat(model, MESSAGES, deadline=5).model)
            except llmroute.LLMRouteError as err:  # pragma: no cover - reported below
                errors.append(err)
            time.sleep(0.01)

    with llmroute.Client(gw.base_url, KEY, retry=retry, limiter=limiter) as client:
        threads = [threading.Thread(target=worker, args=("model-a" if i < 6 else "model-b",))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert not errors
    log = gw.requests
    first_429 = next(r for r in log if r.model == "model-a" and r.answered_status == 429)
    a_during = [r for r in log if r.model == "model-a"
                and first_429.time + 0.25 < r.time < first_429.time + pause]
    b_during = [r for r in log if r.model == "model-b"
                and first_429.time + 0.25 < r.time < first_429.time + pause]
    assert a_during == []
    assert len(b_during) >= 3  # B kept going (tens of calls on an idle machine)
    assert any(r.model == "model-a" and r.time >= first_429.time + pause for r in log)


def _run_sequential_calls(gw, clock, usage, calls=60):
    limiter = llmroute.RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)
    gw.responder = lambda request: Reply(content="ok", usage=usage)
    with llmroute.Client(gw.base_url, KEY, limiter=limiter, clock=clock,
                         sleep=clock.sleep) as client:
        for _ in range(calls):
            client.chat("gpt-5.4", MESSAGES, max_tokens=490)
    return sum(clock.sleeps)


def test_tpm_follows_the_usage_the_api_reports_not_the_estimate(gw, clock):
    # Each call reserves about 500 tokens (prompt estimate + max_tokens=490).
    honest = {"prompt_tokens": 10, "completion_tokens": 490, "total_tokens": 500}
    tenfold_less = {"prompt_tokens": 10, "completion_tokens": 40, "total_tokens": 50}
    slept_low_usage = _run_sequential_calls(gw, clock, tenfold_less)
    gw.reset()
    clock.sleeps.clear()
    slept_full_usage = _run_sequential_calls(gw, clock, honest)
    # 60 calls × 50 tokens fit in the 6,000-token minute: no wait at all.
    assert slept_low_usage == 0
    # 60 calls × 500 tokens = 30,000: about 24,000 tokens over, at 100 tokens/s.
    assert slept_full_usage == pytest.approx(240, rel=0.05)


def test_remaining_tokens_zero_holds_the_next_call_for_the_reset(gw, clock):
    limiter = llmroute.RateLimiter(tpm=100_000, clock=clock, sleep=clock.sleep)
    gw.script("gpt-5.4", Reply(content="ok", headers={"x-ratelimit-remaining-tokens": "0",
                                                      "x-ratelimit-reset-tokens": "1s"}))
    with llmroute.Client(gw.base_url, KEY, limiter=limiter, clock=clock,
                         sleep=clock.sleep) as client:
        first = client.chat("gpt-5.4", MESSAGES)
        assert clock.sleeps == []
        client.chat("gpt-5.4", MESSAGES)
    assert first.rate_limit.remaining_tokens == 0
    assert clock.sleeps == [pytest.approx(1.0)]
