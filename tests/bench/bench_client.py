"""Per-call time and threaded throughput of Client.chat against its peers, side by side.

Against one local server that is not the bottleneck (nginx answering a static chat completion;
see _server.py), each round runs every contender for ``calls`` calls in a rotating order, and
the table gives the median of the per-round ratios to raw ``requests`` and their spread:

- per call: ``Client.chat`` bare and with a ``RateLimiter`` and ``CostTracker`` attached, raw
  ``requests.Session.post(...).json()``, ``urllib3.PoolManager`` (the floor under requests),
  the ``openai`` SDK's sync client and ``litellm.completion`` (each when installed);
- threaded throughput at 8 and 32 threads: one shared ``Client`` against one
  ``requests.Session`` per thread.

Bounded: ``rounds`` x ``calls`` per contender, and a time budget per table part.

    python tests/bench/bench_client.py [--rounds 9] [--calls 1000] [--no-install]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import requests  # noqa: E402
import urllib3  # noqa: E402

import llmroute  # noqa: E402
from _table import (Row, interleave, print_rows, ratio_text, ratios, skipped, us,  # noqa: E402
                    verdict)

MODEL = "gpt-5.4"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
KEY = "sk-bench-0000000000"
TIMEOUT = (5.0, 30.0)
#: Wall-clock budget of each part (per call, threads), whatever the rounds say.
MAX_SECONDS = 240.0

#: Targets of issue 14 (ratios to raw requests, and to the openai SDK).
GOAL_BARE, GOAL_LIMITED, GOAL_OPENAI, GOAL_THREADS = 0.55, 0.6, 0.3, 1.5


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def limited_client(base_url: str, pool: int = 32) -> llmroute.Client:
    """The client "with a limiter and tracker": rpm, tpm and a concurrency cap that never bind."""
    limiter = llmroute.RateLimiter(rpm=10 ** 9, tpm=10 ** 12, max_concurrent=256)
    return llmroute.Client(base_url, KEY, limiter=limiter, tracker=llmroute.CostTracker(),
                           pool_maxsize=pool)


# Per-call contenders: each returns "run ``calls`` calls, give seconds per call". ----------------
def timed(call: Callable[[], object], check: Callable[[object], bool]) -> Callable[[int], float]:
    def run(calls: int) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            out = call()
        elapsed = time.perf_counter() - started
        if not check(out):
            raise AssertionError("a contender returned a wrong answer: %r" % (out,))
        return elapsed / calls
    return run


def _content(data: object) -> bool:
    return bool(data["choices"][0]["message"]["content"])  # type: ignore[index]


def raw_requests(base_url: str) -> Callable[[], object]:
    session = requests.Session()
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer " + KEY}
    payload = {"model": MODEL, "messages": MESSAGES}
    return lambda: session.post(url, json=payload, headers=headers, timeout=TIMEOUT).json()


def raw_urllib3(base_url: str) -> Callable[[], object]:
    pool = urllib3.PoolManager(maxsize=1, retries=False, timeout=urllib3.Timeout(*TIMEOUT))
    url = base_url + "/chat/completions"
    headers = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
    payload = {"model": MODEL, "messages": MESSAGES}
    return lambda: json.loads(pool.request("POST", url, body=json.dumps(payload).encode(),
                                           headers=headers).data)


def openai_sdk(base_url: str) -> Callable[[], object]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=KEY, timeout=30.0)
    create = client.chat.completions.create
    return lambda: create(model=MODEL, messages=MESSAGES)


def litellm_completion(base_url: str) -> Callable[[], object]:
    import litellm

    return lambda: litellm.completion(model="openai/" + MODEL, messages=MESSAGES,
                                      api_base=base_url, api_key=KEY)


def _sdk_content(result: object) -> bool:
    return bool(result.choices[0].message.content)  # type: ignore[attr-defined]


def _chat_content(result: object) -> bool:
    return bool(result.content) and result.cost_usd is not None  # type: ignore[attr-defined]


def per_call_rows(base_url: str, rounds: int = 9, calls: int = 1000,
                  max_seconds: float = MAX_SECONDS) -> List[Row]:
    bare = llmroute.Client(base_url, KEY)
    limited = limited_client(base_url)
    named: List[Tuple[str, Callable[[int], float]]] = [
        ("requests", timed(raw_requests(base_url), _content)),
        ("urllib3", timed(raw_urllib3(base_url), _content)),
        ("bare", timed(lambda: bare.chat(MODEL, MESSAGES), _chat_content)),
        ("limited", timed(lambda: limited.chat(MODEL, MESSAGES), _chat_content)),
    ]
    missing = []
    for module, label, make in (("openai", "openai", openai_sdk),
                                ("litellm", "litellm", litellm_completion)):
        if installed(module):
            named.append((label, timed(make(base_url), _sdk_content)))
        else:
            missing.append(module)
    try:
        for _, run in named:  # warm pools, imports and caches before the clock
            run(max(calls // 10, 20))
        got = interleave([(name, lambda run=run: run(calls)) for name, run in named], rounds,
                         max_seconds)
    finally:
        bare.close()
        limited.close()
    where = "%d rounds × %d calls" % (len(got["requests"]), calls)
    rows: List[Row] = []

    def line(name: str, measure: str, peer: str = "requests", goal: Optional[Tuple] = None
             ) -> None:
        ratio, spread = ratio_text(ratios(got[name], got[peer]))
        mid = float(ratio[:-1])
        rows.append(Row("per call (%s)" % where, measure, us(_median(got[name])),
                        us(_median(got[peer])), ratio, spread,
                        verdict(mid, *goal) if goal else ""))

    line("urllib3", "urllib3 PoolManager.request + json.loads (the floor) / requests")
    line("bare", "Client.chat, bare / requests Session.post + .json()", goal=("<=", GOAL_BARE))
    line("limited", "Client.chat + RateLimiter + CostTracker / requests",
         goal=("<=", GOAL_LIMITED))
    if "openai" in got:
        line("bare", "Client.chat, bare / openai SDK chat.completions.create", peer="openai",
             goal=("<=", GOAL_OPENAI))
        line("openai", "openai SDK / requests")
    if "litellm" in got:
        line("bare", "Client.chat, bare / litellm.completion", peer="litellm")
    for module in missing:
        rows.append(skipped("per call", "Client.chat / %s" % module,
                            "%s not installed" % module))
    return rows


def _median(values: Sequence[float]) -> float:
    import statistics
    return statistics.median(values)


# Threaded throughput ---------------------------------------------------------------------------
def _threads_run(threads: int, calls: int, make_worker: Callable[[], Callable[[], object]]
                 ) -> float:
    """``threads`` threads share ``calls`` calls; returns calls per second from a common start."""
    per_thread = max(calls // threads, 1)
    barrier = threading.Barrier(threads + 1)
    errors: List[BaseException] = []

    def work(call: Callable[[], object]) -> None:
        try:
            barrier.wait(30)
            for _ in range(per_thread):
                call()
        except BaseException as err:  # reported below: a benchmark must not hide a failure
            errors.append(err)

    pool = [threading.Thread(target=work, args=(make_worker(),)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait(30)
    started = time.perf_counter()
    for thread in pool:
        thread.join(120)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError("a benchmark thread failed: %r" % (errors[0],))
    return per_thread * threads / elapsed


def threaded_rows(base_url: str, rounds: int = 9, calls: int = 1000,
                  thread_counts: Sequence[int] = (8, 32),
                  max_seconds: float = MAX_SECONDS) -> List[Row]:
    rows: List[Row] = []
    for threads in thread_counts:
        bare = llmroute.Client(base_url, KEY, pool_maxsize=threads)
        limited = limited_client(base_url, pool=threads)

        def sessions() -> Callable[[], object]:
            call = raw_requests(base_url)  # one Session per thread, made before the clock
            call()
            return call

        def shared(client: llmroute.Client) -> Callable[[], Callable[[], object]]:
            return lambda: (lambda: client.chat(MODEL, MESSAGES))

        named = [("requests", lambda: _threads_run(threads, calls, sessions)),
                 ("bare", lambda: _threads_run(threads, calls, shared(bare))),
                 ("limited", lambda: _threads_run(threads, calls, shared(limited)))]
        try:
            for _, run in named:
                run()  # warm: every thread's connection opened
            got = interleave(named, rounds, max_seconds / len(thread_counts))
        finally:
            bare.close()
            limited.close()
        where = "%d threads, %d rounds × %d calls" % (threads, len(got["requests"]), calls)
        for name, measure, goal in (
                ("bare", "one shared Client, bare / one requests.Session per thread", None),
                ("limited", "one shared Client + RateLimiter + CostTracker / one Session per "
                            "thread", (">=", GOAL_THREADS) if threads == 32 else None)):
            ratio, spread = ratio_text(ratios(got[name], got["requests"]))
            rows.append(Row("throughput (%s)" % where, measure,
                            "%.0f calls/s" % _median(got[name]),
                            "%.0f calls/s" % _median(got["requests"]), ratio, spread,
                            verdict(float(ratio[:-1]), *goal) if goal else ""))
    return rows


def rows(base_url: Optional[str] = None, rounds: int = 9, calls: int = 1000,
         install: bool = True) -> List[Row]:
    """Every row of this benchmark; starts (and stops) its own server when none is given."""
    responder = None
    if base_url is None:
        from _server import start_responder
        responder = start_responder(install=install)
        base_url = responder.base_url
    try:
        # Threads get twice the calls: 1,000 calls over 32 threads is only 31 each.
        return per_call_rows(base_url, rounds, calls) + threaded_rows(base_url, rounds,
                                                                      calls * 2)
    finally:
        if responder is not None:
            responder.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install nginx when it is missing")
    parser.add_argument("--only", choices=("per-call", "threads"), default=None)
    args = parser.parse_args(argv)
    from _server import start_responder
    with start_responder(install=not args.no_install) as responder:
        got: List[Row] = []
        if args.only in (None, "per-call"):
            got += per_call_rows(responder.base_url, args.rounds, args.calls)
        if args.only in (None, "threads"):
            got += threaded_rows(responder.base_url, args.rounds, args.calls * 2)
        print_rows(got, "server: %s" % responder.kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
