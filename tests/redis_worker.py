"""A worker process for the Redis fleet tests: ``python tests/redis_worker.py JSON``.

Each mode does one bounded job against a shared Redis (and the parent's FakeGateway) and prints
one JSON line with what it saw; the parent test compares the workers' reports.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from decimal import Decimal


def _patient(url: str):
    """A client with long timeouts: on a loaded test box a reply slower than the 0.25 s of a
    URL-built client would count as an outage, which these runs do not test."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _wait_until(start_at: float) -> None:
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def bucket(job: dict) -> dict:
    from llmroute import RedisTokenBucket

    tb = RedisTokenBucket(_patient(job["url"]), job["key"], rate=job["rate"],
                          capacity=job["capacity"])
    end = job["start_at"] + job["duration"]
    grants = []
    errors = []
    lock = threading.Lock()

    def run() -> None:
        while time.monotonic() < end:
            try:
                tb.acquire(1, timeout=end - time.monotonic() + 1.0)
            except Exception as err:  # reported to the parent, which asserts there are none
                with lock:
                    errors.append("%s: %s" % (type(err).__name__, err))
                return
            granted = time.monotonic()
            with lock:
                grants.append(granted)

    threads = [threading.Thread(target=run) for _ in range(job["threads"])]
    _wait_until(job["start_at"])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"grants": [g for g in grants if g < end], "errors": errors}


def _limiter(job: dict):
    from llmroute import RateLimiter

    backend = job["url"] if job.get("url_client") else _patient(job["url"])
    return RateLimiter(backend=backend, namespace=job["namespace"], **job["limiter"])


def chat(job: dict) -> dict:
    from llmroute import Client, RetryPolicy

    limiter = _limiter(job)
    client = Client(base_url=job["base_url"], api_key="sk-test-fleet", limiter=limiter,
                    retry=RetryPolicy(**job.get("retry", {})))
    end = job["start_at"] + job["duration"]
    calls = []
    lock = threading.Lock()

    def run(models) -> None:
        i = 0
        while time.monotonic() < end:
            model = models[i % len(models)]
            i += 1
            began = time.monotonic()
            try:
                client.chat(model, [{"role": "user", "content": "hi"}], max_tokens=16)
                error = None
            except Exception as err:  # reported to the parent, which asserts on it
                error = "%s: %s" % (type(err).__name__, err)
            with lock:
                calls.append([model, began, time.monotonic(), error])

    threads = [threading.Thread(target=run, args=(models,)) for models in job["threads"]]
    _wait_until(job["start_at"])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"calls": calls}


def hold(job: dict) -> dict:
    limiter = _limiter(job)
    held = [limiter.reserve(1, model="m") for _ in range(job["slots"])]
    print(json.dumps({"held": len(held)}), flush=True)
    time.sleep(60)  # killed by the parent long before
    return {}


def budget(job: dict) -> dict:
    from llmroute import Budget, BudgetExceededError, Client

    fleet = Budget(Decimal(job["limit"]), backend=_patient(job["url"]),
                   namespace=job["namespace"])
    client = Client(base_url=job["base_url"], api_key="sk-test-fleet")
    billed = []
    refused = 0
    lock = threading.Lock()

    def run() -> None:
        nonlocal refused
        for _ in range(job["calls"]):
            try:
                held = fleet.reserve(Decimal(job["worst_case"]))
            except BudgetExceededError:
                with lock:
                    refused += 1
                return
            result = client.chat(job["model"], [{"role": "user", "content": "hi"}],
                                 max_tokens=job["max_tokens"])
            held.commit(result.cost_usd)
            with lock:
                billed.append(str(result.cost_usd))

    threads = [threading.Thread(target=run) for _ in range(job["threads"])]
    _wait_until(job["start_at"])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"billed": billed, "refused": refused}


def fork(job: dict) -> dict:
    """A limiter used before fork() works in the child: fresh connections, its own renewer."""
    limiter = _limiter(job)
    limiter.reserve(1, model="m").release()  # the parent's pool and renewer are in use
    first = limiter.reserve(1, model="m")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            held = limiter.reserve(1, model="m")
            time.sleep(job["hold"])  # longer than the lease: only the child's renewer keeps it
            alive = limiter.slots_in_use()
            held.release()
            code = 0 if alive == 2 and limiter.in_flight == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    first.release()
    return {"child_exit": os.waitstatus_to_exitcode(status), "in_flight": limiter.in_flight}


MODES = {"bucket": bucket, "chat": chat, "hold": hold, "budget": budget, "fork": fork}

if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    print(json.dumps(MODES[job["mode"]](job)), flush=True)
