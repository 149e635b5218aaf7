"""How long a call with ``deadline=2`` takes against servers that misbehave (README: D + 0.5 s).

Each case runs a few times against a raw-socket server on 127.0.0.1 (see tests/_servers.py);
the script prints the worst and median elapsed seconds. Bounded: ~2 s per run.

    python tests/bench/bench_deadline.py [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import llmroute  # noqa: E402
from _servers import RawServer  # noqa: E402
import test_deadline as cases  # noqa: E402

DEADLINE = 2.0
MESSAGES = [{"role": "user", "content": "hi"}]


def chat(client):
    client.chat("gpt-5.4", MESSAGES, deadline=DEADLINE)


def stream(client):
    with client.stream("gpt-5.4", MESSAGES, deadline=DEADLINE) as s:
        list(s)


CASES = [("chat, body trickled a byte per 50 ms", cases.trickle_body, chat),
         ("chat, headers then silence", cases.headers_then_silence, chat),
         ("chat, no answer at all", cases.slow_answer, chat),
         ("stream, only ': keep-alive' comments", cases.comments_only, stream),
         ("stream, one data line a byte at a time", cases.one_data_line_a_byte_at_a_time,
          stream)]


def rows(runs: int = 3) -> list:
    """Table rows: worst and median elapsed seconds of a deadline=2 call per broken server."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _table import Row

    out = []
    for label, handler, call in CASES:
        times = []
        for _ in range(runs):
            with RawServer(handler) as server:
                with llmroute.Client(server.base_url, "sk-bench-deadline",
                                     timeout=(5, 30)) as client:
                    started = time.monotonic()
                    try:
                        call(client)
                    except llmroute.APITimeoutError:
                        pass
                    times.append(time.monotonic() - started)
        worst = max(times)
        out.append(Row("deadline=%gs against a broken server (%d runs)" % (DEADLINE, runs),
                       label, "worst %.2f s" % worst, "", "%.2f×" % (worst / DEADLINE),
                       "median %.2f s" % statistics.median(times),
                       "≤ D + 0.5 s: %s" % ("met" if worst <= DEADLINE + 0.5 else "NOT met")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from _table import print_rows

    print_rows(rows(args.runs))


if __name__ == "__main__":
    main()
