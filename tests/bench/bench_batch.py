"""batch() against the ideal wall time, next to a bare ThreadPoolExecutor of requests.

1,000 calls to a FakeGateway answering after 50 ms, run in a separate process so its work does
not share our GIL, with 32 workers: the ideal is ceil(1000 / 32) * 0.05 s = 1.6 s. Rounds
alternate between ``llmroute.batch(client.chat)`` and 32 threads doing ``session.post`` on a
pool of 32, so machine noise hits both alike; the script prints the median of each and its
ratio to the ideal. Bounded: a fixed number of calls and rounds.

    python tests/bench/bench_batch.py [--items 1000] [--workers 32] [--latency 0.05] [--rounds 3]
"""
from __future__ import annotations

import argparse
import functools
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

import llmroute  # noqa: E402
from llmroute.batch import batch  # noqa: E402

KEY = "sk-bench-0000000000"
MODEL = "gpt-5.4"


def start_gateway(latency):
    proc = subprocess.Popen([sys.executable, "-m", "llmroute.testing", "--port", "0",
                             "--latency", str(latency)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1"):
        proc.kill()
        raise SystemExit("gateway did not start: %r" % base_url)
    return proc, base_url


def messages(i):
    return [{"role": "user", "content": "Summarise item %d in one line." % i}]


def run_batch(base_url, items, workers):
    client = llmroute.Client(base_url, KEY, pool_maxsize=workers)
    try:
        chat = functools.partial(client.chat, MODEL)
        batch(chat, [messages(i) for i in range(workers)], max_workers=workers)  # warm the pool
        start = time.perf_counter()
        result = batch(chat, (messages(i) for i in range(items)), max_workers=workers,
                       keep_results=False)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    assert result.succeeded == items, str(result)
    return elapsed, result


def run_raw(base_url, items, workers):
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=workers)
    session.mount("http://", adapter)
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer " + KEY}

    def post(i):
        response = session.post(url, json={"model": MODEL, "messages": messages(i)},
                                headers=headers, timeout=(5, 30))
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(post, range(workers)))  # warm the pool
            start = time.perf_counter()
            answers = list(pool.map(post, range(items)))
            elapsed = time.perf_counter() - start
    finally:
        session.close()
    assert len(answers) == items and all(answers)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ideal = math.ceil(args.items / args.workers) * args.latency
    proc, base_url = start_gateway(args.latency)
    ours, raw, last = [], [], None
    try:
        for _ in range(args.rounds):
            elapsed, last = run_batch(base_url, args.items, args.workers)
            ours.append(elapsed)
            raw.append(run_raw(base_url, args.items, args.workers))
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=10)
    ours_s, raw_s = statistics.median(ours), statistics.median(raw)
    print("%d items, %d workers, gateway latency %.0f ms in a separate process, %d rounds"
          % (args.items, args.workers, args.latency * 1000, args.rounds))
    print("ideal wall time ceil(%d/%d) x %.3fs:        %.3f s" % (args.items, args.workers,
                                                              args.latency, ideal))
    print("llmroute.batch(client.chat):             %.3f s  ratio %.3f (goal <= 1.15)  rounds %s"
          % (ours_s, ours_s / ideal, ", ".join("%.3f" % t for t in ours)))
    print("raw ThreadPoolExecutor + session.post:   %.3f s  ratio %.3f               rounds %s"
          % (raw_s, raw_s / ideal, ", ".join("%.3f" % t for t in raw)))
    print("batch / raw:                             %.3f" % (ours_s / raw_s))
    print("last batch: p50 %.1f ms, p99 %.1f ms, %.0f items/s"
          % (last.p50, last.p99, last.throughput))


if __name__ == "__main__":
    main()
