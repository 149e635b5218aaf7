"""Benchmark the Redis backend against the in-memory one, side by side, in one run.

Prints: (1) 1-token acquires per second on a bucket whose rate never binds, for the in-memory
TokenBucket and the RedisTokenBucket (one process with one thread, then 4 processes with one
thread each, per process and in total); (2) the Redis commands (round trips) one Client.chat
and one Router.complete make with the limiter, the Budget and the router's health on Redis,
counted by a wrapping client; (3) what the Redis server itself reports (commands per second,
CPU seconds per command of the reserve script).

    python tests/bench/bench_redis.py [--seconds 3] [--processes 4] [--redis URL]

Without --redis (or LLMROUTE_TEST_REDIS_URL) it starts a throwaway redis-server on a free
loopback port and stops it at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from llmroute import Budget, Client, RateLimiter, RedisTokenBucket, Router  # noqa: E402
from llmroute.limits import TokenBucket  # noqa: E402

HI = [{"role": "user", "content": "hi"}]


def acquires_per_second(bucket, seconds: float) -> float:
    count, end = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < end:
        for _ in range(100):
            bucket.acquire(1)
        count += 100
    return count / (time.perf_counter() - started)


def worker(url: str, key: str, seconds: float, start_at: float) -> None:
    bucket = RedisTokenBucket(url, key, rate=1e9, capacity=1e9)
    bucket.acquire(1)  # connect and load the script before the clock starts
    time.sleep(max(0.0, start_at - time.monotonic()))
    print(json.dumps({"ops": acquires_per_second(bucket, seconds)}), flush=True)


def fleet(url: str, processes: int, seconds: float) -> list:
    key = "bench-" + uuid.uuid4().hex[:8]
    start_at = time.monotonic() + 1.5
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", url, key, str(seconds),
                               str(start_at)], stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 30)
        rates.append(json.loads(out.strip().splitlines()[-1])["ops"])
    return rates


def counting_client(url: str):
    import redis

    class Counting(redis.Redis):
        commands = 0

        def execute_command(self, *args, **options):
            type(self).commands += 1
            return super().execute_command(*args, **options)

    return Counting.from_url(url)


def round_trips(url: str, calls: int = 50) -> tuple:
    from llmroute.testing import FakeGateway, Reply

    ns = "bench-" + uuid.uuid4().hex[:8]
    counting = counting_client(url)
    limiter = RateLimiter(rpm=10 ** 6, tpm=10 ** 9, max_concurrent=64, backend=counting,
                          namespace=ns, expected_processes=4,
                          model_limits={"gpt-5.4": {"rpm": 10 ** 6, "tpm": 10 ** 9}})
    headers = {"x-ratelimit-remaining-requests": "999", "x-ratelimit-remaining-tokens": "99999"}
    with FakeGateway(responder=lambda req: Reply(headers=headers)) as gw:
        client = Client(base_url=gw.base_url, api_key="sk-bench", limiter=limiter)
        client.chat("gpt-5.4", HI, max_tokens=16)
        before = type(counting).commands
        for _ in range(calls):
            client.chat("gpt-5.4", HI, max_tokens=16)
        per_chat = (type(counting).commands - before) / calls
        router = Router(client, budget=Budget("1000", backend=counting, namespace=ns),
                        health_backend=counting, namespace=ns)
        router.complete("Write a haiku about rain", task="general")
        before = type(counting).commands
        started = time.monotonic()
        for _ in range(calls):
            router.complete("Write a haiku about rain", task="general")
        elapsed = time.monotonic() - started
        per_route = (type(counting).commands - before) / calls
    return per_chat, per_route, elapsed / calls


def server_stats(url: str) -> dict:
    import redis

    info = redis.Redis.from_url(url).info("commandstats")
    return {name: stats for name, stats in info.items() if name in (
        "cmdstat_evalsha", "cmdstat_script|load", "cmdstat_ping")}


def redis_available() -> str:
    """Why the Redis rows cannot run ("" when they can)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("redis") is None:
        return "redis-py not installed (pip install '.[redis]')"
    if not os.environ.get("LLMROUTE_TEST_REDIS_URL") and not shutil.which("redis-server"):
        return "no LLMROUTE_TEST_REDIS_URL and no redis-server binary"
    return ""


def rows(url: str = None, seconds: float = 3.0, processes: int = 4) -> list:
    """Table rows: acquires/s in memory and on Redis, Redis round trips per call. Starts a
    throwaway redis-server when neither ``url`` nor LLMROUTE_TEST_REDIS_URL is given."""
    from _table import Row, skipped

    why = redis_available() if not url else ""
    if why:
        return [skipped("Redis bucket", "RedisTokenBucket / TokenBucket", why)]
    url = url or os.environ.get("LLMROUTE_TEST_REDIS_URL")
    server = None
    if not url:
        from _redis import RedisServer

        server = RedisServer().start()
        url = server.url
    try:
        memory = acquires_per_second(TokenBucket(rate=1e9, capacity=1e9), seconds)
        bucket = RedisTokenBucket(url, "bench-" + uuid.uuid4().hex[:8], rate=1e9, capacity=1e9)
        bucket.acquire(1)
        one = acquires_per_second(bucket, seconds)
        rates = fleet(url, processes, seconds)
        per_chat, per_route, route_s = round_trips(url)
        script = server_stats(url).get("cmdstat_evalsha", {})
    finally:
        if server is not None:
            server.cleanup()
    bench = "Redis bucket (1-token acquires, rate never binds, %g s; %s)" % (
        seconds, "throwaway redis-server" if server is not None else "LLMROUTE_TEST_REDIS_URL")
    return [
        Row(bench, "acquires/s, 1 process × 1 thread: RedisTokenBucket / TokenBucket",
            "%.0f/s" % one, "%.0f/s in memory" % memory, "%.3f×" % (one / memory), "",
            "≥ 5,000/s: %s" % ("met" if one >= 5000 else "NOT met")),
        Row(bench, "acquires/s, %d processes × 1 thread on one key (per process; total)"
            % processes, "%.0f–%.0f/s; %.0f/s" % (min(rates), max(rates), sum(rates)), "",
            "", "", ""),
        Row(bench, "Redis round trips per Client.chat (limiter on Redis)", "%.2f" % per_chat,
            "", "", "", "≤ 2: %s" % ("met" if per_chat <= 2 else "NOT met")),
        Row(bench, "Redis round trips per Router.complete (+ Budget, health on Redis)",
            "%.2f (%.1f ms/call)" % (per_route, route_s * 1000), "", "", "",
            "≤ 4: %s" % ("met" if per_route <= 4 else "NOT met")),
        Row(bench, "Redis server time per script call (INFO commandstats, evalsha)",
            "%s µs" % script.get("usec_per_call", "?"), "", "", "",
            "%s calls" % script.get("calls", "?")),
    ]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--redis", default=os.environ.get("LLMROUTE_TEST_REDIS_URL"))
    args = parser.parse_args()
    server = None
    url = args.redis
    if not url:
        from _redis import RedisServer

        server = RedisServer().start()
        url = server.url
    try:
        memory = acquires_per_second(TokenBucket(rate=1e9, capacity=1e9), args.seconds)
        bucket = RedisTokenBucket(url, "bench-" + uuid.uuid4().hex[:8], rate=1e9, capacity=1e9)
        bucket.acquire(1)
        one = acquires_per_second(bucket, args.seconds)
        rates = fleet(url, args.processes, args.seconds)
        per_chat, per_route, route_s = round_trips(url)
        print("1-token acquires per second (rate never binds), %gs each:" % args.seconds)
        rows = [("", "in-memory", "Redis"),
                ("1 process, 1 thread", "%.0f" % memory, "%.0f" % one),
                ("%d processes x 1 thread: per process" % args.processes, "-",
                 "%.0f-%.0f" % (min(rates), max(rates))),
                ("%d processes: total on one key" % args.processes, "-", "%.0f" % sum(rates))]
        for label, left, right in rows:
            print("  %-40s %12s %12s" % (label, left, right))
        print("Redis round trips (commands through a counting client):")
        print("  per Client.chat (limiter: rpm, tpm, model limits, max_concurrent): %.2f"
              % per_chat)
        print("  per Router.complete (+ Budget and health on Redis): %.2f  (%.1f ms per call)"
              % (per_route, route_s * 1000))
        for name, stats in server_stats(url).items():
            print("  server %s: calls=%s usec_per_call=%s" % (name, stats.get("calls"),
                                                              stats.get("usec_per_call")))
    finally:
        if server is not None:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
