"""``llmroute batch INPUT.jsonl -o OUTPUT.jsonl``: the command's options, wiring and exit codes.

Exit codes (``_common``): 0 every item succeeded, 1 some failed (or were invalid lines), 2 bad
usage (no input, bad options, no API key, an OUTPUT that may not be touched), 130 after Ctrl-C.
The API key comes from the environment only, so it never shows in ``ps``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from decimal import Decimal
from typing import Any, List, Mapping, Optional, Sequence, TextIO, Tuple

from . import jsonl as jb
from ._common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError,
                      positive_float, positive_int, print_error)
from ..batching import BatchInterrupted
from .._options import reserved_output_tokens
from ..client import Client
from ..costs import Budget, CostTracker, parse_usd
from ..errors import BudgetExceededError, ConfigError
from ..progress import is_terminal
from ..tokens import estimate_tokens

__all__ = ["add_parser", "run", "run_batch", "format_summary", "main", "ItemCaller"]

log = logging.getLogger(__name__)

_COMMAND = "llmroute batch"
_KEY_VARIABLES = ("LLMROUTE_API_KEY", "OPENAI_API_KEY")
_URL_VARIABLES = ("LLMROUTE_BASE_URL", "OPENAI_BASE_URL")


def _money(text: str) -> Decimal:
    try:
        return parse_usd(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a non-negative amount in USD, got %r"
                                         % text) from None


def _shard(text: str) -> Tuple[int, int]:
    """``I/N`` with 0 <= I < N: this host's share of the input."""
    index, slash, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not slash or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError("expected I/N with 0 <= I < N (e.g. 0/3), got %r"
                                         % text)
    return i, n


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError("expected a redis://, rediss:// or unix:// URL")
    return text


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Declare ``llmroute batch``; its ``func`` is ``run``."""
    parser = subparsers.add_parser(
        "batch", help="run a JSONL file of prompts, resumably",
        description="Run every line of INPUT.jsonl ({\"id\": ..., \"prompt\": ...} or "
                    "{\"id\": ..., \"messages\": [...]}, optional model, task, priority and "
                    "OpenAI parameters) and append one JSON line per id to OUTPUT as each "
                    "finishes. Without a model the router picks one. The API key is read from "
                    "LLMROUTE_API_KEY (or OPENAI_API_KEY) only.",
        epilog="examples:\n"
               "  llmroute batch prompts.jsonl -o results.jsonl --workers 32 --rpm 3000\n"
               "  llmroute batch prompts.jsonl -o results.jsonl --resume   # after a crash\n"
               "  llmroute batch in.jsonl -o out-0.jsonl --shard 0/3 --redis redis://db:6379/0")
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


#: The name ``llmroute.batch_cli`` had; it goes with that deprecated alias.
add_batch_parser = add_parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT.jsonl", help="one JSON object per line")
    parser.add_argument("-o", "--output", metavar="OUTPUT.jsonl", required=True,
                        help="results, one JSON line per input id, appended as they finish")
    parser.add_argument("--workers", type=positive_int, default=8,
                        help="calls in flight at once (default %(default)s)")
    parser.add_argument("--rpm", type=positive_float, help="client-side requests per minute")
    parser.add_argument("--tpm", type=positive_float, help="client-side tokens per minute")
    parser.add_argument("--max-concurrent", type=positive_int,
                        help="cap on requests in flight (below --workers to throttle)")
    parser.add_argument("--max-cost-usd", type=_money, help="most one request may cost")
    parser.add_argument("--budget-usd", type=_money,
                        help="most the whole run may cost (what OUTPUT already cost counts)")
    parser.add_argument("--priority", choices=jb.ROUTER_PRIORITIES, default="balanced",
                        help="how the router ranks models (default %(default)s)")
    parser.add_argument("--base-url", help="gateway URL (default: $LLMROUTE_BASE_URL)")
    parser.add_argument("--tasks", metavar="FILE.json",
                        help="custom task types for the classifier: "
                             "{label: {language: {phrase: weight}}}")
    parser.add_argument("--routes", metavar="FILE.json",
                        help="routes over the default ones, a route for each custom task")
    parser.add_argument("--ledger", metavar="FILE",
                        help="record every call in this usage ledger (a SQLite file or a "
                             "postgresql:// URL; default: $LLMROUTE_LEDGER)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress line on stderr (default: when stderr is a terminal)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="skip ids already in OUTPUT and finish the rest")
    again.add_argument("--overwrite", action="store_true", help="replace a non-empty OUTPUT")
    parser.add_argument("--fsync", action="store_true",
                        help="fsync OUTPUT after every line (survives a power cut; slower)")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="run only shard I of N (0 <= I < N; by a stable hash of each id), "
                             "so N hosts split one INPUT, each with its own OUTPUT")
    parser.add_argument("--redis", type=_redis_url, metavar="URL",
                        help="share --rpm/--tpm/--max-concurrent, --budget-usd and model "
                             "cooldowns on this Redis with every host of --namespace")
    parser.add_argument("--namespace", default="llmroute-batch",
                        help="the quota shared on --redis (default %(default)s; never the key)")


class ItemCaller:
    """Sends one input item: ``client.chat`` for a given model, else ``router.complete``.

    Every request of an item carries the same ``Idempotency-Key``, derived from its id. Items
    with a model are held to ``max_cost_usd`` and ``budget`` here, as the router does its own.
    """

    def __init__(self, client: Client, router: Any = None, *,
                 max_cost_usd: Optional[Decimal] = None,
                 budget: Optional[Budget] = None) -> None:
        self.client = client
        self.router = router
        self.max_cost_usd = max_cost_usd
        self.budget = budget

    def __call__(self, item: jb.Item) -> Any:
        key = jb.idempotency_key(item.key)
        if item.model is None:
            if self.router is None:
                raise ConfigError("line %d has no model and no router was given; give the "
                                  "line a model" % item.line)
            return self.router.complete(item.prompt if item.prompt is not None
                                        else item.messages, task=item.task,
                                        priority=item.route_priority, idempotency_key=key,
                                        **item.params)
        messages = item.messages or [{"role": "user", "content": item.prompt}]
        hold = self._hold(item.model, messages, item.params)
        try:
            result = self.client.chat(item.model, messages, idempotency_key=key, **item.params)
        except BaseException:
            if hold is not None:
                hold.release()
            raise
        if hold is not None:
            hold.commit(result.cost_usd)
        return result

    def _hold(self, model: str, messages: List[Mapping[str, Any]],
              params: Mapping[str, Any]) -> Any:
        """Check the worst case against the caps before sending; a budget hold or None."""
        if self.max_cost_usd is None and self.budget is None:
            return None
        spec = self.client.catalog.get(model)
        out = reserved_output_tokens(self.client.catalog, model, params)
        worst = spec.worst_case_cost(estimate_tokens(messages), out) if spec else None
        cap = self.max_cost_usd
        if cap is not None and (worst is None or worst > cap):
            raise BudgetExceededError(
                "%s may cost up to $%s per request, over --max-cost-usd $%s; nothing was sent"
                % (model, worst if worst is not None else "? (unpriced)", cap),
                limit_usd=cap, needed_usd=worst)
        return self.budget.reserve(worst) if self.budget is not None else None


def _env(names: Sequence[str]) -> Optional[str]:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _prepare_output(args: argparse.Namespace) -> jb.OutputState:
    """Check OUTPUT against --resume/--overwrite; scan and repair it for a resume."""
    path = args.output
    if os.path.isdir(path):
        raise UsageError("OUTPUT %s is a directory" % path)
    if os.path.abspath(path) == os.path.abspath(args.input):
        raise UsageError("OUTPUT must not be the INPUT file")
    if args.resume:
        try:
            return jb.scan_output(path)
        except jb.OutputError as err:
            raise UsageError(str(err)) from None
    if os.path.exists(path) and os.path.getsize(path) > 0 and not args.overwrite:
        raise UsageError("OUTPUT %s exists and is not empty: pass --resume to finish it or "
                         "--overwrite to replace it" % path)
    with open(path, "wb"):
        pass  # create, or empty for --overwrite
    return jb.OutputState()


def _build_router(client: Client, args: argparse.Namespace, budget: Optional[Budget]) -> Any:
    from ..router import Router

    classifier = None
    if getattr(args, "tasks", None):
        from ..classification import Classifier

        classifier = Classifier(tasks_file=args.tasks)
    return Router(client, routes=getattr(args, "routes", None), classifier=classifier,
                  priority=args.priority, max_cost_usd=args.max_cost_usd,
                  budget=budget, health_backend=args.redis, namespace=args.namespace)


def run(args: argparse.Namespace) -> int:
    """Run ``llmroute batch`` for parsed ``args``; returns the exit code."""
    return run_batch(args)


def run_batch(args: argparse.Namespace, *, client: Optional[Client] = None,
              stderr: Optional[TextIO] = None) -> int:
    """Run the ``batch`` command for parsed ``args``; return the exit code.

    ``client`` replaces the one built from the options and environment (for embedding and
    tests; it is not closed here). The key the command read from the environment is the one
    it keeps out of OUTPUT and stderr (a given client keeps its own out of its errors).
    """
    err = stderr if stderr is not None else sys.stderr
    api_key = _env(_KEY_VARIABLES)
    owned = client is None
    try:
        _check_input(args.input)
        if client is None:
            client = _make_client(args, api_key)
        state = _prepare_output(args)
    except (UsageError, ConfigError, ValueError, OSError) as problem:
        print_error(_COMMAND, problem, err)
        if owned and client is not None:
            client.close()
        return EXIT_USAGE
    try:
        return _run(args, client, state, api_key, err)
    finally:
        if owned:
            client.close()


def _check_input(path: str) -> None:
    """INPUT must be a file this process can open (OSError/UsageError otherwise)."""
    if not os.path.isfile(path):
        raise UsageError("INPUT %s is not a readable file" % path)
    with open(path, "rb"):
        pass


def _make_client(args: argparse.Namespace, api_key: Optional[str]) -> Client:
    if not api_key:
        raise UsageError("no API key: set LLMROUTE_API_KEY (or OPENAI_API_KEY) in the "
                         "environment; it is never taken from the command line")
    base_url = args.base_url or _env(_URL_VARIABLES)
    if not base_url:
        raise UsageError("no gateway: pass --base-url or set LLMROUTE_BASE_URL")
    limiter = None
    if args.rpm or args.tpm or args.max_concurrent:
        from ..limits import RateLimiter

        shared = {}
        if args.redis:  # one quota for every host: each gets 1/N of it if Redis goes away
            shared = {"backend": args.redis, "namespace": args.namespace,
                      "expected_processes": args.shard[1] if args.shard else 1}
        limiter = RateLimiter(rpm=args.rpm, tpm=args.tpm, max_concurrent=args.max_concurrent,
                              **shared)
    from ..ledger import LedgerError
    try:
        return Client(base_url, api_key, limiter=limiter, tracker=CostTracker(),
                      pool_maxsize=max(args.workers, 1), ledger=getattr(args, "ledger", None))
    except LedgerError as problem:
        raise UsageError(str(problem)) from None


def _run(args: argparse.Namespace, client: Client, state: jb.OutputState,
         api_key: Optional[str], err: TextIO) -> int:
    budget = None
    if args.budget_usd is not None and args.redis:
        # The fleet's budget on Redis already holds what earlier runs of every host spent.
        budget = Budget(args.budget_usd, backend=args.redis, namespace=args.namespace)
    elif args.budget_usd is not None:
        budget = Budget(args.budget_usd)
        if state.spent_usd:
            budget.charge(state.spent_usd)  # what OUTPUT already cost counts against it
    try:
        router = _build_router(client, args, budget)
    except ValueError as problem:
        print_error(_COMMAND, problem, err)
        return EXIT_USAGE
    caller = ItemCaller(client, router, max_cost_usd=args.max_cost_usd, budget=budget)
    progress: Any = args.progress if args.progress is not None else is_terminal(err)
    if progress:
        progress = err
    summary = jb.Summary()
    summary.repaired_bytes = state.repaired_bytes
    reader = jb.InputReader(args.input, state.done, shard=args.shard)
    code = EXIT_OK
    try:
        with jb.OutputWriter(args.output, fsync=args.fsync) as writer:
            jb.run(reader, writer, caller, workers=args.workers, progress=progress,
                   secrets=(api_key,) if api_key else (), summary=summary)
    except BatchInterrupted:
        code = EXIT_INTERRUPTED
    except OSError as problem:  # e.g. OUTPUT's disk is full: what was written stays
        print_error(_COMMAND, problem, err)
        code = EXIT_FAILED
    summary.skipped = reader.skipped
    tracker = client.tracker
    requests = None
    if tracker is not None:
        requests = {m: t.requests + t.errors for m, t in tracker.snapshot().by_model.items()}
    print(format_summary(summary, requests, output=args.output), file=err)
    if args.shard is not None:
        print("shard %d/%d: %d lines of INPUT belong to the other shards"
              % (args.shard[0], args.shard[1], reader.other_shards), file=err)
    if code == EXIT_OK and summary.failed:
        code = EXIT_FAILED
    return code


def format_summary(summary: jb.Summary, requests_by_model: Optional[Mapping[str, int]] = None,
                   output: str = "") -> str:
    """The end-of-run table: items, ok, failed; per model requests, tokens, cost, latency."""
    lines = ["llmroute batch: %d items: %d ok, %d failed (%d invalid lines); %d skipped as "
             "already in OUTPUT; %.1fs" % (summary.items, summary.ok, summary.failed,
                                            summary.invalid, summary.skipped,
                                            summary.wall_seconds)]
    if summary.by_model:
        header = ("model", "ok", "failed", "requests", "tokens", "cost USD", "p50 ms", "p99 ms")
        rows = [header]
        for model in sorted(summary.by_model):
            tally = summary.by_model[model]
            requests = (requests_by_model or {}).get(model, tally.succeeded + tally.failed)
            rows.append((model, str(tally.succeeded), str(tally.failed), str(requests),
                         str(summary.tokens.get(model, 0)),
                         str(tally.cost) if tally.priced else "-",
                         _ms(tally.percentile(50)), _ms(tally.percentile(99))))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            lines.append("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                          for i, (cell, w) in enumerate(zip(row, widths))))
    if summary.errors_by_type:
        lines.append("errors: " + ", ".join("%s %d" % kv for kv in sorted(
            summary.errors_by_type.items(), key=lambda kv: (-kv[1], kv[0]))))
    for problem in summary.invalid_lines:
        lines.append("invalid input " + problem)
    if summary.invalid > len(summary.invalid_lines):
        lines.append("... and %d more invalid lines (see OUTPUT)"
                     % (summary.invalid - len(summary.invalid_lines)))
    if summary.repaired_bytes:
        lines.append("repaired OUTPUT: cut a half-written last line (%d bytes)"
                     % summary.repaired_bytes)
    if summary.interrupted:
        lines.append("interrupted: %d items were still running and were not written; run "
                     "again with --resume to finish" % summary.unfinished)
    if output:
        lines.append("results in %s" % output)
    return "\n".join(lines)


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else "%.1f" % value


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m llmroute.cli.batch``: the batch command on its own (``llmroute batch``)."""
    from . import main as cli_main

    return cli_main(["batch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
