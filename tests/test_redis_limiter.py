"""RateLimiter(backend=redis) across processes, against a real redis-server and a FakeGateway."""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import pytest

from _redis import run_fleet, spawn
from llmroute import Client, RateLimiter, RateLimitTimeout
from llmroute.backends import redis_client as rc
from llmroute.backends.redis_limiter import RedisRateLimiter, RedisReservation
from llmroute.errors import BackendUnavailableError
from llmroute.testing import Reply

HI = [{"role": "user", "content": "hi"}]


def _counting_client(url):
    """A redis.Redis that counts the commands (round trips) sent through it."""
    import redis

    class Counting(redis.Redis):
        commands = 0

        def execute_command(self, *args, **options):
            type(self).commands += 1
            return super().execute_command(*args, **options)

    return Counting.from_url(url)


def _patient(url):
    """A client with long timeouts: on a loaded test box a reply slower than the 0.25 s of a
    URL-built client would count as an outage, which only the outage tests are about."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _limiter(url, namespace, **kwargs):
    kwargs.setdefault("expected_processes", 4)
    backend = _patient(url) if isinstance(url, str) else url
    return RateLimiter(backend=backend, namespace=namespace, **kwargs)


def test_backend_makes_the_shared_limiter_and_checks_its_arguments(redis_url, namespace):
    limiter = _limiter(redis_url, namespace, rpm=60)
    assert isinstance(limiter, RedisRateLimiter) and isinstance(limiter, RateLimiter)
    assert type(RateLimiter(rpm=60)) is RateLimiter
    with pytest.raises(ValueError, match="expected_processes"):
        RateLimiter(rpm=60, backend=redis_url, namespace=namespace)
    for bad in ({"namespace": "a{b}"}, {"lease_seconds": True}, {"on_backend_error": "ignore"},
                {"expected_processes": 0}):
        args = dict({"namespace": namespace, "expected_processes": 2}, **bad)
        with pytest.raises(ValueError, match=list(bad)[0]):
            RateLimiter(rpm=60, backend=redis_url, **args)
    fallback = limiter.requests_bucket  # the per-process share used when Redis is away
    assert fallback.rate == pytest.approx(60 / 60 / 4)


@pytest.mark.parametrize("max_concurrent", [8, None])
def test_a_chat_costs_two_round_trips_and_shares_the_remaining_levels(
        redis_url, namespace, gw, max_concurrent):
    gw.responder = lambda req: Reply(headers={"x-ratelimit-remaining-tokens": "5000",
                                              "x-ratelimit-remaining-requests": "90"})
    counting = _counting_client(redis_url)
    limiter = _limiter(counting, namespace, rpm=6000, tpm=10 ** 6, max_concurrent=max_concurrent,
                       model_limits={"m": {"rpm": 100, "tpm": 50000}})
    client = Client(base_url=gw.base_url, api_key="sk-test-rt", limiter=limiter)
    client.chat("m", HI, max_tokens=16)  # loads the scripts
    before = type(counting).commands
    for _ in range(10):
        client.chat("m", HI, max_tokens=16)
    assert type(counting).commands - before == 20
    other = _limiter(redis_url, namespace, rpm=6000, tpm=10 ** 6, max_concurrent=8,
                     model_limits={"m": {"rpm": 100, "tpm": 50000}})
    with pytest.raises(RateLimitTimeout):  # the model's level is down to what the server said
        other.reserve(6000, model="m", timeout=0)
    other.reserve(6000, model="n", timeout=0).release()  # another model is not held back
    assert limiter.in_flight == 0
    if max_concurrent:
        assert limiter.slots_in_use() == 0


def test_max_concurrent_holds_across_four_processes(redis_url, namespace, gw):
    gw.latency = 0.1
    try:
        start_at = time.monotonic() + 1.2
        job = {"mode": "chat", "url": redis_url, "namespace": namespace,
               "base_url": gw.base_url, "start_at": start_at, "duration": 1.5,
               "threads": [["m"]] * 3,
               "limiter": {"max_concurrent": 5, "expected_processes": 4}}
        reports = run_fleet([job] * 4, timeout=20)
    finally:
        gw.latency = 0.0
    calls = [c for r in reports for c in r["calls"]]
    assert [c for c in calls if c[3]] == []
    assert gw.max_in_flight == 5  # never more, and the cap was reached
    assert len(calls) >= 40  # ~5 at a time for 1.5 s at 0.1 s each: the fleet kept working


def test_a_long_call_keeps_its_slot_past_the_lease(redis_url, namespace, gw):
    gw.script("m", Reply(delay=2.0))
    holder = _limiter(redis_url, namespace, max_concurrent=1, lease_seconds=0.6)
    other = _limiter(redis_url, namespace, max_concurrent=1, lease_seconds=0.6)
    client = Client(base_url=gw.base_url, api_key="sk-test-lease", limiter=holder)
    call = threading.Thread(target=client.chat, args=("m", HI))
    call.start()
    assert gw.wait_for_requests(1, timeout=2)
    with pytest.raises(RateLimitTimeout):  # 1.2 s = two leases: only renewals keep it held
        other.reserve(1, timeout=1.2)
    call.join(3)
    other.reserve(1, timeout=0.5).release()


def test_a_killed_process_gives_its_slots_back_within_the_lease(redis_url, namespace):
    job = {"mode": "hold", "url": redis_url, "namespace": namespace, "slots": 2,
           "limiter": {"max_concurrent": 2, "lease_seconds": 1.0, "expected_processes": 2}}
    proc = spawn(job)
    try:
        assert json.loads(proc.stdout.readline()) == {"held": 2}
        limiter = _limiter(redis_url, namespace, max_concurrent=2, lease_seconds=1.0)
        assert limiter.slots_in_use() == 2
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(5)
        first = limiter.reserve(1, timeout=2.5)
        second = limiter.reserve(1, timeout=2.5)
        assert time.monotonic() - killed <= 1.0 + 1.0
        first.release()
        second.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_retry_after_pauses_that_model_in_every_process(redis_url, namespace, gw):
    gw.script("model-a", Reply(status=429, headers={"Retry-After": "2"}))
    gw.latency = 0.02
    try:
        start_at = time.monotonic() + 1.2
        job = {"mode": "chat", "url": redis_url, "namespace": namespace,
               "base_url": gw.base_url, "start_at": start_at, "duration": 2.2,
               "threads": [["model-a"], ["model-b"]],
               "limiter": {"rpm": 60000, "expected_processes": 3}}
        reports = run_fleet([job] * 3, timeout=20)
    finally:
        gw.latency = 0.0
    assert [c for r in reports for c in r["calls"] if c[3]] == []
    throttled = [r.time for r in gw.requests_for("model-a") if r.answered_status == 429]
    assert len(throttled) == 1
    quiet = (throttled[0] + 0.2, throttled[0] + 1.8)
    assert [r.time for r in gw.requests_for("model-a") if quiet[0] < r.time < quiet[1]] == []
    assert len([r for r in gw.requests_for("model-b") if quiet[0] < r.time < quiet[1]]) >= 10
    assert any(r.time >= quiet[1] for r in gw.requests_for("model-a"))  # and it resumed


def test_redis_going_away_falls_back_with_one_warning_and_comes_back(
        redis_server_factory, namespace, gw, caplog):
    server = redis_server_factory()
    limiter = RateLimiter(rpm=60000, max_concurrent=4, backend=server.url, namespace=namespace,
                          expected_processes=2)  # a URL: the short timeouts are under test
    client = Client(base_url=gw.base_url, api_key="sk-test-outage", limiter=limiter)
    client.chat("m", HI)
    caplog.set_level(logging.WARNING, logger="llmroute.backends")
    server.stop()
    started = time.monotonic()
    client.chat("m", HI)  # the call that finds Redis gone
    assert time.monotonic() - started < 1.0
    assert not limiter.backend_up
    for _ in range(10):
        client.chat("m", HI)
    warnings = [r for r in caplog.records if r.name.startswith("llmroute.backends")]
    assert len(warnings) == 1 and "per-process" in warnings[0].getMessage()
    server.start()
    end = time.monotonic() + rc.PROBE_SECONDS + 2.0
    while not limiter.backend_up and time.monotonic() < end:
        time.sleep(0.05)
    assert limiter.backend_up
    held = limiter.reserve(1, model="m")
    assert isinstance(held, RedisReservation) and limiter.slots_in_use() == 1
    held.release()
    assert len([r for r in caplog.records if r.name.startswith("llmroute.backends")]) == 1


def test_a_silent_redis_costs_one_call_a_quarter_second_and_the_next_ones_nothing(
        namespace, redis_package):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete in the kernel; nothing ever answers
    try:
        limiter = RateLimiter(rpm=600, max_concurrent=2, expected_processes=2, namespace=namespace,
                              backend="redis://127.0.0.1:%d/0" % silent.getsockname()[1])
        started = time.monotonic()
        limiter.reserve(1).release()
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(20):
            limiter.reserve(1).release()
        rest = time.monotonic() - started
    finally:
        silent.close()
    assert 0.2 <= first < 1.0  # the 0.25 s read timeout, then the per-process fallback
    assert rest < 0.2


def test_raise_mode_raises_when_redis_is_away(namespace, redis_package):
    from _redis import free_port

    limiter = RateLimiter(rpm=60, backend="redis://127.0.0.1:%d/0" % free_port(),
                          namespace=namespace, on_backend_error="raise")
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        limiter.reserve(1)
    with pytest.raises(BackendUnavailableError):
        limiter.reserve(1)
    assert time.monotonic() - started < 0.6


def test_a_limiter_made_before_fork_works_in_the_child(redis_url, namespace):
    job = {"mode": "fork", "url": redis_url, "namespace": namespace, "hold": 1.2,
           "url_client": True,  # the pool llmroute built must be reset in the child
           "limiter": {"max_concurrent": 3, "lease_seconds": 0.5, "expected_processes": 2}}
    (report,) = run_fleet([job], timeout=15)
    assert report == {"child_exit": 0, "in_flight": 0}


def test_settle_moves_the_difference_once_and_pauses_follow_their_scope(redis_url, namespace):
    a = _limiter(redis_url, namespace, tpm=600, sleep=lambda s: None)
    b = _limiter(redis_url, namespace, tpm=600, sleep=lambda s: None)
    held = a.reserve(100, model="m")
    assert held.settle(500) == 400 and held.settle(500) == 0  # a repeated settle moves nothing
    with pytest.raises(RateLimitTimeout, match="tpm"):
        b.reserve(200, model="m", timeout=1)  # 100 left: 100 more take 10 s at 10/s
    assert held.refund() == 500
    b.reserve(200, model="m", timeout=0).release()
    with pytest.raises(ValueError, match="tpm"):
        b.reserve(601)
    key_wide = _limiter(redis_url, namespace + "-k", rpm=60, pause_scope="key")
    assert key_wide.observe("m", 429, {"Retry-After": "5"}) == 5
    assert 4 < key_wide.pause_remaining("other") <= 5
    per_model = _limiter(redis_url, namespace + "-m", rpm=60)
    per_model.observe("m", 429, {"Retry-After": "5"})
    assert per_model.pause_remaining("other") == 0 and per_model.pause_remaining("m") > 4


def test_a_wrong_type_at_a_limiter_key_falls_back_to_local_limits(
        redis_url, redis_client, namespace):
    limiter = RateLimiter(rpm=600, tpm=100_000, backend=redis_url, namespace=namespace,
                          expected_processes=2, on_backend_error="local")
    try:
        redis_client.set(limiter.redis_keys(None)["rq"], "not a hash")  # WRONGTYPE for HMGET
        reservation = limiter.reserve(10)
        reservation.settle(10)
    finally:
        limiter.close()


def test_a_wrong_type_at_a_limiter_key_is_backend_unavailable_in_raise_mode(
        redis_url, redis_client, namespace):
    limiter = RateLimiter(rpm=600, tpm=100_000, backend=redis_url, namespace=namespace,
                          expected_processes=2, on_backend_error="raise")
    try:
        redis_client.set(limiter.redis_keys(None)["rq"], "not a hash")
        with pytest.raises(BackendUnavailableError, match="ResponseError"):
            limiter.reserve(10)
    finally:
        limiter.close()
