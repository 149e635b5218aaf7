"""Every benchmark in one run, printed as one table of ratios: ``python tests/bench/run.py``.

Each ``bench_*.py`` beside this file exposes ``rows(...)`` (a list of ``_table.Row``, or tuples
or dicts of its fields) and stays runnable alone. This script imports each one present, calls
``rows`` with the arguments it takes from ``base_url``, ``rounds`` and ``calls``, and lists as
skipped a benchmark whose module, service or peer is missing. The client benchmarks talk to
nginx serving a static chat completion (config in ``nginx/``, installed with apt-get when
missing, started on a free loopback port in a throwaway prefix), or, only when nginx cannot be
had, to the FakeGateway in its own process, which the header then says. Every loop is bounded
in count and time; the whole run takes a few minutes.

    python tests/bench/run.py [--rounds 9] [--calls 1000] [--only client bucket ...]
                              [--no-install]
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from _server import start_responder  # noqa: E402
from _table import Row, as_row, format_table, machine_line, skipped  # noqa: E402

#: The benchmarks in the order of the table: (module, what it measures).
BENCHMARKS = (
    ("bench_client", "Client.chat per call and threaded, against requests, urllib3, openai, "
                     "litellm"),
    ("bench_import", "import time and memory"),
    ("bench_bucket", "TokenBucket against pyrate-limiter and limits"),
    ("bench_classify", "the classifier against the first-match baseline"),
    ("bench_batch", "batch wall time against the ideal"),
    ("bench_deadline", "deadline against broken servers"),
    ("bench_redis", "the Redis bucket"),
    ("bench_ledger", "the usage ledger"),
)
PEERS = ("openai", "litellm", "pyrate-limiter", "limits", "redis")


def _version(distribution: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(distribution)
    except Exception:  # not installed (PackageNotFoundError) or metadata unreadable
        return None


def peers_line() -> str:
    found = []
    for name in PEERS:
        got = _version(name)
        found.append("%s %s" % (name, got) if got else "%s not installed" % name)
    return "peers: " + ", ".join(found)


def call_rows(name: str, module: Any, context: Dict[str, Any]) -> List[Row]:
    """``module.rows(...)`` with the context arguments its signature names."""
    rows_fn = getattr(module, "rows", None)
    if not callable(rows_fn):
        return [skipped(name, "", "%s.py has no rows() function (run it alone)" % name)]
    accepted = inspect.signature(rows_fn).parameters
    kwargs = {k: v for k, v in context.items() if k in accepted}
    return [as_row(item) for item in rows_fn(**kwargs)]


def run_one(name: str, context: Dict[str, Any], log: List[str]) -> List[Row]:
    if not (HERE / (name + ".py")).exists():
        return [skipped(name, "", "%s.py is not in this checkout" % name)]
    started = time.monotonic()
    try:
        module = importlib.import_module(name)
    except ImportError as err:  # a module of llmroute or a service library it needs is missing
        return [skipped(name, "", "cannot import: %s" % (err,))]
    try:
        got = call_rows(name, module, context)
    except Exception as err:  # a failed benchmark is shown as failed, never left out quietly
        traceback.print_exc(file=sys.stderr)
        return [Row(name, "", "FAILED", "", "", "", "%s: %s" % (type(err).__name__,
                                                                 str(err)[:150]))]
    log.append("%s %.0f s" % (name, time.monotonic() - started))
    return got


def summary(rows: List[Row]) -> List[str]:
    with_target = [r for r in rows if "met" in r.target]
    missed = [r for r in with_target if "NOT met" in r.target or "FAILED" in r.ours]
    lines = ["targets: %d of %d met" % (len(with_target) - len(missed), len(with_target))]
    for row in missed:
        lines.append("  not met: %s, %s (%s %s)" % (row.bench, row.measure, row.ratio or row.ours,
                                                    row.target))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9,
                        help="interleaved rounds per comparison (default 9)")
    parser.add_argument("--calls", type=int, default=1000,
                        help="calls per contender per round (default 1000)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME",
                        help="run only these (client, import, bucket, classify, batch, "
                             "deadline, redis, ledger)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install nginx when it is missing")
    args = parser.parse_args(argv)
    if args.rounds < 3 or args.calls < 10:
        parser.error("--rounds must be >= 3 and --calls >= 10")
    names = [name for name, _ in BENCHMARKS
             if args.only is None or name[len("bench_"):] in args.only]
    started = time.monotonic()
    server_log: List[str] = []
    timing: List[str] = []
    rows: List[Row] = []
    responder = start_responder(install=not args.no_install, log=server_log) \
        if "bench_client" in names else None
    try:
        context = {"base_url": responder.base_url if responder else None,
                   "rounds": args.rounds, "calls": args.calls}
        for name in names:
            rows.extend(run_one(name, context, timing))
    finally:
        if responder is not None:
            responder.close()
    load = "load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    lines = ["llmroute benchmarks — python tests/bench/run.py (--rounds %d --calls %d)"
             % (args.rounds, args.calls),
             machine_line() + (" · " + load if load else ""),
             "server: %s on 127.0.0.1" % (responder.kind if responder else "none (not needed)"),
             peers_line(),
             "ratio = llmroute / peer (time: lower is better; calls/s and grants/s: higher); "
             "median of per-round ratios, spread = min–max over the rounds",
             "", format_table(rows), ""]
    lines += summary(rows)
    lines.append("took %.0f s (%s)" % (time.monotonic() - started, ", ".join(timing)))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
