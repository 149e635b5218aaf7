"""Benchmark the usage ledger: what a call's thread pays to record, what the writer pays per
row, sustained rows per second, and how long a report over a million rows takes.

Prints, from one run on SQLite (and on PostgreSQL with ``--postgres DSN``):
(1) the record step on the call's thread, timed with ``perf_counter`` around
    ``ledger.record_call(...)`` for each call: mean, p50, p99 in microseconds (target <= 15);
(2) the writer thread's CPU time per row (``pthread_getcpuclockid``);
(3) rows per second sustained from ``--threads`` recording threads until all are durable;
(4) ``llmroute usage --by model`` over ``--report-rows`` rows (target <= 5 s for 1,000,000),
    once idle and once while a writer keeps writing.

    python tests/bench/bench_ledger.py [--calls 200000] [--threads 4] [--report-rows 1000000]
                                       [--postgres postgresql://...]
"""
from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout
from decimal import Decimal
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from llmroute.catalog import default_catalog  # noqa: E402
from llmroute.cli import main as cli_main  # noqa: E402
from llmroute.client import Client  # noqa: E402
from llmroute.ledger import Ledger, LedgerRow  # noqa: E402
from llmroute.results import ChatResult, Usage  # noqa: E402

MODELS = list(default_catalog().names())


def _result(i: int) -> ChatResult:
    model = MODELS[i % len(MODELS)]
    p, c = 1000 + i % 5000, 100 + i % 700
    return ChatResult(content="ok", model=model, finish_reason="stop",
                      usage=Usage(p, c, p + c, 0), cost_usd=default_catalog().cost(model, p, c),
                      latency_ms=300.0 + i % 2000, request_id="req-%d" % i)


def _writer_thread() -> Optional[threading.Thread]:
    found = [t for t in threading.enumerate() if t.name == "llmroute-ledger-writer"]
    return found[-1] if found else None


def _thread_cpu(thread: threading.Thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def bench_record(target: str, calls: int) -> None:
    results = [_result(i) for i in range(1000)]
    ledger = Ledger(target, max_pending=max(calls, 100_000))
    # The record step exactly as Client.chat runs it after a call (no request is sent here).
    client = Client("http://127.0.0.1:9/v1", "bench-key", ledger=ledger)
    messages = [{"role": "user", "content": "hi"}]
    client.record("warm", messages, result=results[0])
    ledger.flush()
    writer = _writer_thread()
    cpu0 = _thread_cpu(writer) if writer else 0.0
    timings: List[float] = []
    perf = time.perf_counter
    for i in range(calls):
        result = results[i % 1000]
        t0 = perf()
        client.record(result.model, messages, result=result, task="code", routed_via="primary",
                      tag="bench")
        timings.append(perf() - t0)
    started = perf()
    ledger.flush(timeout=120)
    drain = perf() - started
    cpu = (_thread_cpu(writer) - cpu0) if writer else float("nan")
    timings.sort()
    us = [t * 1e6 for t in timings]
    print("  Client.record (the record step) on the call's thread (%d calls): mean %.2f us, p50 %.2f us, "
          "p99 %.2f us, max %.0f us" % (calls, statistics.fmean(us), us[len(us) // 2],
                                        us[int(len(us) * 0.99)], us[-1]))
    print("  writer thread CPU: %.2f us per row (%d rows, %.2f s CPU; drained %.2f s after the "
          "last call); dropped %d, errors %d" % (cpu / calls * 1e6, calls, cpu, drain,
                                                 ledger.dropped, ledger.errors))
    ledger.close()


def bench_sustained(target: str, threads: int, seconds: float) -> None:
    ledger = Ledger(target)
    results = [_result(i) for i in range(1000)]
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(n: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            for _ in range(100):
                result = results[i % 1000]
                ledger.record_call(result.model, result=result, task="code")
                i += 1
        counts[n] = i

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    ledger.flush(timeout=300)
    elapsed = time.perf_counter() - started
    total = sum(counts)
    print("  sustained: %d threads recorded %d rows in %.1f s, all durable after %.1f s: "
          "%.0f rows/s; dropped %d" % (threads, total, seconds, elapsed, total / elapsed,
                                       ledger.dropped))
    ledger.close()


def _fill(target: str, rows: int) -> None:
    """Write ``rows`` rows over 30 days through the ledger's own writer."""
    ledger = Ledger(target, max_pending=200_000)
    rng = random.Random(1)
    now = time.time()
    catalog = default_catalog()
    prices = {m: catalog.spec(m) for m in MODELS}
    started = time.perf_counter()
    for i in range(rows):
        model = MODELS[i % len(MODELS)]
        p, c = rng.randint(10, 20_000), rng.randint(1, 2_000)
        ledger.record(LedgerRow(now - rng.random() * 30 * 86_400, model, prompt_tokens=p,
                                completion_tokens=c, cost_usd=prices[model].cost(p, c),
                                latency_ms=rng.uniform(100, 5000), task="code", tag="t"))
    ledger.close(timeout=600)
    print("  filled %d rows in %.1f s (dropped %d)" % (rows, time.perf_counter() - started,
                                                      ledger.dropped))


def _time_report(target: str) -> float:
    out = io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(out):
        code = cli_main(["usage", "--ledger", target, "--by", "model"])
    elapsed = time.perf_counter() - started
    assert code == 0, out.getvalue()
    return elapsed


def bench_report(target: str, rows: int) -> None:
    _fill(target, rows)
    idle = _time_report(target)
    print("  llmroute usage --by model over %d rows: %.2f s (target <= 5 s)" % (rows, idle))
    # The application writes from its own process while someone runs the report.
    writer = subprocess.Popen([sys.executable, "-c", _KEEP_WRITING, target],
                              stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        busy = _time_report(target)
    finally:
        writer.stdin.close()  # the writer stops at EOF on its stdin
        out = writer.stdout.read().strip()
        writer.wait(60)
    print("  the same while another process keeps writing (~2,000 rows/s): %.2f s (%s)"
          % (busy, out))


_KEEP_WRITING = """
import sys, threading, time
sys.path.insert(0, %r)
from decimal import Decimal
from llmroute.ledger import Ledger, LedgerRow
ledger = Ledger(sys.argv[1])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
print("writing", flush=True)
n = 0
while not done.is_set():
    for _ in range(20):
        ledger.record(LedgerRow(time.time(), "gpt-5.4", cost_usd=Decimal("0.001"), latency_ms=90.0))
        n += 1
    time.sleep(0.01)
ledger.close()
print("wrote %%d rows, dropped %%d" %% (n, ledger.dropped))
""" % os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def run(label: str, target: str, args: argparse.Namespace, report_target: str) -> None:
    print("== %s" % label)
    bench_record(target, args.calls)
    bench_sustained(target, args.threads, args.seconds)
    if args.report_rows:
        bench_report(report_target, args.report_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--report-rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", metavar="DSN", default=None,
                        help="also run on this (empty, throwaway) PostgreSQL database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", os.path.join(tmp, "bench.db"), args, os.path.join(tmp, "report.db"))
    if args.postgres:
        run("PostgreSQL", args.postgres, args, args.postgres)


if __name__ == "__main__":
    main()
