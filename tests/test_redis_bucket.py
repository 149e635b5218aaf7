"""RedisTokenBucket and the Redis plumbing, against a real redis-server
(LLMROUTE_TEST_REDIS_URL)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from _redis import ROOT, run_fleet
from llmroute import RateLimitTimeout, RedisTokenBucket
from llmroute.backends import redis_client as rc
from llmroute.errors import BackendUnavailableError


def test_import_llmroute_does_not_import_redis():
    code = ("import sys, llmroute; llmroute.RedisTokenBucket; "
            "print('redis' in sys.modules, 'llmroute.backends.redis_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out[0] == "False"


def test_bucket_takes_a_burst_then_waits_the_time_the_script_says(redis_url, namespace):
    sleeps = []
    tb = RedisTokenBucket(redis_url, namespace, rate=10, capacity=2, sleep=sleeps.append)
    assert tb.acquire() == 0.0 and tb.acquire() == 0.0
    wait = tb.acquire()
    assert sleeps == [wait] and 0.08 < wait <= 0.1  # one token at 10/s, minus time passed
    assert tb.level < 0  # the debt is queued in Redis: the next caller waits behind it
    assert 0.15 < tb.wait_time(1) <= 0.2
    assert tb.try_acquire() is False


def test_bucket_refuses_a_wait_past_the_timeout_taking_nothing(redis_url, namespace):
    tb = RedisTokenBucket(redis_url, namespace, rate=1, capacity=1, sleep=lambda s: None)
    tb.acquire()
    before = tb.level
    with pytest.raises(RateLimitTimeout):
        tb.acquire(1, timeout=0.1)
    assert tb.level == pytest.approx(before, abs=0.05)


def test_refund_caps_at_capacity_and_consume_leaves_a_debt(redis_url, namespace):
    tb = RedisTokenBucket(redis_url, namespace, rate=0.001, capacity=5, sleep=lambda s: None)
    tb.acquire(3)
    tb.refund(100)
    assert tb.level == pytest.approx(5, abs=0.01)
    tb.consume(7)
    assert tb.level == pytest.approx(-2, abs=0.01)


@pytest.mark.parametrize("bad", [0, -1, 6, True, "1", float("nan")])
def test_bad_token_counts_are_value_errors(redis_url, namespace, bad):
    tb = RedisTokenBucket(redis_url, namespace, rate=1, capacity=5)
    with pytest.raises(ValueError, match="n"):
        tb.acquire(bad)


def test_key_has_the_namespace_hash_tag_and_a_ttl(redis_url, redis_client, namespace):
    tb = RedisTokenBucket(redis_url, namespace, rate=1, capacity=3, sleep=lambda s: None)
    tb.acquire(2)
    assert tb.redis_key == "llmroute:{%s/bucket}:tb" % namespace
    ttl = redis_client.pttl(tb.redis_key)
    assert 1000 < ttl <= 3000  # expires once it would be full again (2 s) plus a second
    tb.refund(2)
    assert redis_client.exists(tb.redis_key) == 0  # a full bucket needs no key


def test_script_is_loaded_again_after_script_flush(redis_url, redis_client, namespace):
    tb = RedisTokenBucket(redis_url, namespace, rate=100, capacity=10)
    tb.acquire()
    redis_client.script_flush()
    assert tb.try_acquire() is True


def test_backend_accepts_urls_and_clients_and_refuses_the_rest(redis_url):
    import redis

    assert isinstance(rc.connect("unix:///tmp/nowhere.sock"), redis.Redis)
    assert isinstance(rc.connect("rediss://127.0.0.1:1/0"), redis.Redis)
    client = redis.Redis.from_url(redis_url)
    assert rc.connect(client) is client
    for bad in ("http://127.0.0.1:6379", "127.0.0.1:6379", 6379, None, True, object()):
        with pytest.raises(ValueError, match="redis"):
            RedisTokenBucket(bad, "ns", rate=1, capacity=1)
    with pytest.raises(ValueError, match="key"):
        RedisTokenBucket(redis_url, "a{b}", rate=1, capacity=1)


def test_a_unix_socket_url_reaches_redis(redis_server_factory, namespace):
    server = redis_server_factory()
    tb = RedisTokenBucket(server.unix_url, namespace, rate=1, capacity=2, sleep=lambda s: None)
    assert tb.acquire(2) == 0.0 and tb.try_acquire() is False


def test_repr_and_errors_never_show_the_password(redis_package):
    tb = RedisTokenBucket("redis://user:s3cret-pass@127.0.0.1:1/0", "ns", rate=1, capacity=1)
    assert "s3cret-pass" not in repr(tb)
    with pytest.raises(BackendUnavailableError) as info:
        tb.acquire()
    assert "s3cret-pass" not in str(info.value)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):  # known down: fails at once, no new connect
        tb.acquire()
    assert time.monotonic() - started < 0.05


def test_every_script_touches_keys_of_one_cluster_slot(redis_url, namespace):
    from redis.cluster import key_slot

    from llmroute import RateLimiter
    from llmroute.backends.redis_budget import RedisBudget
    from llmroute.backends.redis_health import RedisHealthBoard

    limiter = RateLimiter(60, 6000, 2, backend=redis_url, namespace=namespace,
                          expected_processes=2, model_limits={"m": {"rpm": 5, "tpm": 500}})
    groups = [[RedisTokenBucket(redis_url, namespace, rate=1, capacity=1).redis_key]]
    groups.append(list(limiter.redis_keys("m").values()) + list(limiter.redis_keys().values()))
    budget = RedisBudget("1", backend=redis_url, namespace=namespace, period="day")
    groups.append(budget.redis_keys())
    health = RedisHealthBoard(backend=redis_url, namespace=namespace)
    groups.append(health.redis_keys("m"))
    for keys in groups:
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys
    assert not any("sk-" in k for group in groups for k in group)


@pytest.mark.slow  # 10 s of real time: the only test over the 5 s limit, by necessity
def test_four_processes_of_four_threads_share_one_bucket(redis_url, namespace):
    start_at = time.monotonic() + 1.5  # the workers import and connect first
    job = {"mode": "bucket", "url": redis_url, "key": namespace, "rate": 40, "capacity": 4,
           "threads": 4, "start_at": start_at, "duration": 10.0}
    reports = run_fleet([job] * 4, timeout=30)
    assert [e for r in reports for e in r["errors"]] == []
    grants = sorted(t for r in reports for t in r["grants"])
    assert abs(len(grants) - 404) <= 404 * 0.03, len(grants)
    j, worst = 0, 0
    for i, began in enumerate(grants):
        while grants[j] < began - 1.0 + 1e-9:
            j += 1
        worst = max(worst, i - j + 1)
    assert worst <= 44, worst
    assert all(len(r["grants"]) > 60 for r in reports)  # nobody starved


def test_a_password_in_the_url_query_never_appears_in_a_repr(redis_package):
    bucket = RedisTokenBucket("redis://127.0.0.1:1/0?password=hunter2", "k", 10, 10)
    assert "hunter2" not in repr(bucket)
    assert rc.describe("redis://h:1/0?db=0&Password=hunter2&x=1") == \
        "redis://h:1/0?db=0&Password=***&x=1"
    assert rc.describe("unix:///tmp/redis.sock?db=1") == "unix:///tmp/redis.sock?db=1"
    assert rc.describe("unix:///tmp/redis.sock?password=hunter2") == \
        "unix:///tmp/redis.sock?password=***"
