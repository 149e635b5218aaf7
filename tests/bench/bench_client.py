"""Per-call overhead of Client.chat against a bare requests.Session.post(...).json().

Both talk to the same FakeGateway, run in a separate process so its work does not share our
GIL. Rounds alternate between the two so machine noise hits both alike; the script prints the
median per-call time of each and the ratio. Also times ``import llmroute`` vs ``import
requests`` in fresh interpreters. Bounded: a fixed number of calls, a few seconds in all.

    python tests/bench/bench_client.py [--calls 2000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

import llmroute  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
KEY = "sk-bench-0000000000"


def start_gateway():
    proc = subprocess.Popen([sys.executable, "-m", "llmroute.testing", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1"):
        proc.kill()
        raise SystemExit("gateway did not start: %r" % base_url)
    return proc, base_url


def time_raw(base_url, calls):
    session = requests.Session()
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer " + KEY}
    payload = {"model": "gpt-5.4", "messages": MESSAGES}
    session.post(url, json=payload, headers=headers, timeout=(5, 30)).json()  # warm the pool
    start = time.perf_counter()
    for _ in range(calls):
        data = session.post(url, json=payload, headers=headers, timeout=(5, 30)).json()
    elapsed = time.perf_counter() - start
    assert data["choices"][0]["message"]["content"]
    session.close()
    return elapsed / calls


def time_client(base_url, calls):
    with llmroute.Client(base_url, KEY) as client:
        client.chat("gpt-5.4", MESSAGES)
        start = time.perf_counter()
        for _ in range(calls):
            result = client.chat("gpt-5.4", MESSAGES)
        elapsed = time.perf_counter() - start
    assert result.content and result.cost_usd is not None
    return elapsed / calls


def time_import(module, runs=7):
    times = []
    for _ in range(runs):
        code = "import time; t = time.perf_counter(); import %s; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code % module], capture_output=True,
                             text=True, check=True, cwd=str(ROOT))
        times.append(float(out.stdout))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    proc, base_url = start_gateway()
    try:
        raw, ours = [], []
        for _ in range(args.rounds):
            raw.append(time_raw(base_url, args.calls))
            ours.append(time_client(base_url, args.calls))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    raw_ms, ours_ms = statistics.median(raw) * 1000, statistics.median(ours) * 1000
    print("calls per round: %d, rounds: %d, gateway in a separate process" % (args.calls,
                                                                             args.rounds))
    print("raw requests Session.post().json(): %.3f ms/call" % raw_ms)
    print("llmroute Client.chat():             %.3f ms/call" % ours_ms)
    print("ratio Client.chat / raw requests:   %.2f (goal <= 0.75)" % (ours_ms / raw_ms))
    imp_requests, imp_ours = time_import("requests"), time_import("llmroute")
    print("import requests: %.1f ms, import llmroute: %.1f ms (ratio %.2f)"
          % (imp_requests * 1000, imp_ours * 1000, imp_ours / imp_requests))


if __name__ == "__main__":
    main()
