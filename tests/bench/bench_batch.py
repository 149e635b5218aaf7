"""batch() against the ideal wall time, next to a bare ThreadPoolExecutor of requests.

1,000 calls to a FakeGateway answering after 50 ms, run in a separate process so its work does
not share our GIL, with 32 workers: the ideal is ceil(1000 / 32) * 0.05 s = 1.6 s. Rounds
alternate between ``llmroute.batch(client.chat)`` and 32 threads doing ``session.post`` on a
pool of 32, so machine noise hits both alike; the rows give the median of the per-round ratios
to the ideal and their spread. Bounded: a fixed number of calls and rounds.

    python tests/bench/bench_batch.py [--items 1000] [--workers 32] [--latency 0.05] [--rounds 5]
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
from llmroute.batching import batch  # noqa: E402

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


def rows(items: int = 1000, workers: int = 32, latency: float = 0.05, rounds: int = 5) -> list:
    """Table rows: batch() and a bare pool of requests, each against the ideal wall time."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _table import Row, interleave, ratio_text, ratios, verdict

    ideal = math.ceil(items / workers) * latency
    proc, base_url = start_gateway(latency)
    try:
        got = interleave([("batch", lambda: run_batch(base_url, items, workers)[0]),
                          ("raw", lambda: run_raw(base_url, items, workers))], rounds, 120.0)
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=10)
    bench = ("batch, %d calls, %d workers, gateway answering after %.0f ms (FakeGateway, own "
             "process), %d rounds" % (items, workers, latency * 1000, len(got["batch"])))
    ideal_s = [ideal] * len(got["batch"])
    out = []
    for name, measure, goal in (
            ("batch", "llmroute.batch(client.chat) wall time / ideal ceil(n/workers) × latency",
             ("<=", 1.15)),
            ("raw", "ThreadPoolExecutor + requests session.post wall time / ideal", None)):
        ratio, spread = ratio_text(ratios(got[name], ideal_s))
        out.append(Row(bench, measure, "%.3f s" % statistics.median(got[name]),
                       "%.3f s ideal" % ideal, ratio, spread,
                       verdict(float(ratio[:-1]), *goal) if goal else ""))
    ratio, spread = ratio_text(ratios(got["batch"], got["raw"]))
    out.append(Row(bench, "llmroute.batch / ThreadPoolExecutor + requests",
                   "%.3f s" % statistics.median(got["batch"]),
                   "%.3f s" % statistics.median(got["raw"]), ratio, spread, ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from _table import print_rows

    print_rows(rows(args.items, args.workers, args.latency, args.rounds))


if __name__ == "__main__":
    main()
