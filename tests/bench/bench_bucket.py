"""TokenBucket against pyrate-limiter and limits (when installed), with real threads and clocks.

Rows, from one run: (1) the sustained rate each limiter grants to 8 threads at 500/s over a
few seconds, after the first second's burst, and its error (ours: within +-1%); (2) the cost of
one acquire with tokens there, from one thread and from 8 threads at once (rounds interleaved,
median of the per-round ratios); (3) how long an acquire(5) waits among threads doing
acquire(1), against the FIFO bound. The peers are test-time only: ``pip install pyrate-limiter
limits``. ``limits`` has no blocking acquire, so its rate run polls every millisecond.

    python tests/bench/bench_bucket.py [--seconds 4] [--rate 500] [--threads 8]
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from _table import Row, interleave, print_rows, ratio_text, ratios, skipped  # noqa: E402
from llmroute.errors import RateLimitTimeout  # noqa: E402
from llmroute.limits import TokenBucket  # noqa: E402

HUGE = 10 ** 9  # a rate that never binds during a cost loop
MAX_SECONDS = 60.0  # per part, whatever the rounds say


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# One "take a token" callable per limiter: blocking (for the rate run) and "tokens are there".
def ours(rate: float, capacity: float) -> Tuple[Callable[[float], bool], Callable[[], object]]:
    bucket = TokenBucket(rate, capacity)

    def blocking(timeout: float) -> bool:
        try:
            bucket.acquire(1, timeout=timeout)
            return True
        except RateLimitTimeout:
            return False
    return blocking, bucket.try_acquire


def pyrate(rate: float, capacity: float) -> Tuple[Callable[[float], bool], Callable[[], object]]:
    from pyrate_limiter import Duration, Limiter, Rate

    limiter = Limiter(Rate(int(rate), Duration.SECOND))

    def blocking(timeout: float) -> bool:
        return bool(limiter.try_acquire("bench", blocking=True, timeout=max(timeout, 0.001)))
    return blocking, lambda: limiter.try_acquire("bench", blocking=False)


def limits_lib(rate: float, capacity: float) -> Tuple[Callable[[float], bool],
                                                       Callable[[], object]]:
    from limits import RateLimitItemPerSecond, storage, strategies

    window = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerSecond(int(rate))

    def blocking(timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not window.hit(item, "bench"):
            if time.monotonic() >= end:
                return False
            time.sleep(0.001)  # no blocking acquire: poll
        return True
    return blocking, lambda: window.hit(item, "bench")


PEERS = (("pyrate-limiter", "pyrate_limiter", pyrate), ("limits", "limits", limits_lib))


def sustained_rate(blocking: Callable[[float], bool], seconds: float,
                   threads: int) -> Tuple[float, float]:
    """Grants per second after the first second (the burst) with ``threads`` threads, and the
    process CPU seconds the run took (polling shows there)."""
    cpu = time.process_time()
    stamps: List[List[float]] = [[] for _ in range(threads)]
    start = time.monotonic()
    end = start + seconds

    def worker(index: int) -> None:
        while True:
            left = end - time.monotonic()
            if left <= 0 or not blocking(left):
                return
            stamps[index].append(time.monotonic())

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 10)
    counted = sum(1 for per in stamps for t in per if start + 1.0 <= t < end)
    return counted / (seconds - 1.0), time.process_time() - cpu


def cost_us(call: Callable[[], object], calls: int, threads: int = 1) -> float:
    """Microseconds per call: ``threads`` threads share ``calls`` calls, wall time / calls."""
    each = calls // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait(30)
        for _ in range(each):
            call()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait(30)
    started = time.perf_counter()
    for thread in pool:
        thread.join(60)
    return (time.perf_counter() - started) / (each * threads) * 1e6


def fifo_wait(rate: float, threads: int, limit: float = 3.0) -> Tuple[str, float]:
    """The wait of one acquire(5) on a TokenBucket while ``threads`` threads loop on acquire(1)."""
    bucket = TokenBucket(rate, 5)
    stop = threading.Event()

    def small() -> None:
        while not stop.is_set():
            try:
                bucket.acquire(1, timeout=1.0)
            except RateLimitTimeout:
                return

    pool = [threading.Thread(target=small) for _ in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(0.5)  # let the small ones queue up
    asked = time.monotonic()
    try:
        bucket.acquire(5, timeout=limit)
        outcome = "%.1f ms" % ((time.monotonic() - asked) * 1000)
    except RateLimitTimeout:
        outcome = "starved (> %.0f ms)" % (limit * 1000)
    stop.set()
    for thread in pool:
        thread.join(limit + 2)
    return outcome, (5 + threads) / rate * 1000


def rows(seconds: float = 4.0, rate: float = 500.0, threads: int = 8, rounds: int = 9,
         acquires: int = 20000) -> List[Row]:
    peers = [(label, make) for label, module, make in PEERS if installed(module)]
    missing = [label for label, module, _ in PEERS if not installed(module)]
    out: List[Row] = []
    bench = "TokenBucket rate (%d threads, %g/s, %g s)" % (threads, rate, seconds)
    mine, mine_cpu = sustained_rate(ours(rate, rate / 10)[0], seconds, threads)
    mine_err = 100.0 * (mine - rate) / rate
    met = "met" if abs(mine_err) <= 1.0 else "NOT met"
    for label, make in peers:
        theirs, cpu = sustained_rate(make(rate, rate / 10)[0], seconds, threads)
        out.append(Row(bench, "sustained grants/s after the first second (CPU of the run) / %s"
                       % label, "%.1f/s (%+.2f%%), %.2f s CPU" % (mine, mine_err, mine_cpu),
                       "%.1f/s (%+.2f%%), %.2f s CPU" % (theirs, 100.0 * (theirs - rate) / rate,
                                                         cpu),
                       "%.3f×" % (mine / theirs), "", "ours within ±1%%: %s" % met))
    if not peers:
        out.append(Row(bench, "sustained grants/s after the first second (CPU of the run)",
                       "%.1f/s (%+.2f%%), %.2f s CPU" % (mine, mine_err, mine_cpu), "", "", "",
                       "within ±1%%: %s" % met))
    # Costs: interleaved rounds, the median of the per-round ratios.
    takers: Dict[str, Callable[[], object]] = {"ours": ours(HUGE, HUGE)[1]}
    for label, make in peers:
        takers[label] = make(HUGE, HUGE)[1]
    for n_threads in (1, threads):
        got = interleave([(name, lambda take=take: cost_us(take, acquires, n_threads))
                          for name, take in takers.items()], rounds, MAX_SECONDS)
        where = "acquire, tokens there, %d thread%s (%d rounds × %d calls)" % (
            n_threads, "s" if n_threads > 1 else "", len(got["ours"]), acquires)
        for label, _ in peers:
            ratio, spread = ratio_text(ratios(got["ours"], got[label]))
            out.append(Row(where, "TokenBucket.try_acquire / %s" % label,
                           "%.2f µs" % statistics.median(got["ours"]),
                           "%.2f µs" % statistics.median(got[label]), ratio, spread, ""))
    for label in missing:
        out.append(skipped("TokenBucket", "TokenBucket / %s" % label,
                           "%s not installed (pip install pyrate-limiter limits)" % label))
    outcome, bound = fifo_wait(rate, threads)
    out.append(Row("TokenBucket fairness", "acquire(5) among %d threads of acquire(1) at %g/s"
                   % (threads, rate), outcome, "FIFO bound %.1f ms" % bound, "", "",
                   "served in order (no starvation)" if "starved" not in outcome
                   else "NOT met: starved"))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    print_rows(rows(args.seconds, args.rate, args.threads, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
