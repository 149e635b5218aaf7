"""``llmroute demo``: the main job end to end, offline, against an embedded FakeGateway.

It routes prompts in four languages, shows a 429 being waited out, a failing model being
replaced by its fallback, a cost cap, a JSON extraction repaired in a second turn, a streamed
answer, a batch with its progress line, and a report per model of what it all cost. Nothing
leaves 127.0.0.1; the figures printed are the ones measured in this run. ``--base-url`` (or
``LLMROUTE_BASE_URL``/``OPENAI_BASE_URL``) runs the same steps against a real gateway, except
those that need scripted failures. It prints no colour, so ``NO_COLOR`` holds as it is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from typing import Any, Mapping, Optional, Sequence, TextIO, Tuple

from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, print_error

__all__ = ["add_parser", "run", "run_demo", "SKIPPED"]

_COMMAND = "llmroute demo"
_KEY_VARIABLES = ("LLMROUTE_API_KEY", "OPENAI_API_KEY")
_URL_VARIABLES = ("LLMROUTE_BASE_URL", "OPENAI_BASE_URL")
#: The key the embedded gateway is sent: it checks none, and this one is no secret.
_FAKE_KEY = "demo-key-not-a-secret"
#: What a step that needs a scripted failure says against a real gateway.
SKIPPED = "skipped (needs the fake gateway)"
#: Batch sizes: offline the batch shows throughput; on a real gateway every item is billed.
OFFLINE_BATCH_SIZE = 40
LIVE_BATCH_SIZE = 6
#: Characters of the first model's error kept in a one-line failure report.
_EXCERPT = 200

PROMPTS = [
    "Write a Python function that removes duplicates from a list but keeps the order.",
    "방정식 2x + 3 = 11을 풀어 주세요. 풀이 과정도 보여 주세요.",
    "请用三句话总结下面这篇文章的要点：\n\n" + "城市公园在夏季吸引了大量游客，管理部门增加了清洁人员和夜间照明。" * 3,
    "次の文章から人名と日付をすべて抽出して JSON で返してください。\n\n"
    "2024年3月1日、田中さんは大阪で佐藤さんと会った。",
    "Write a short poem about autumn rain on a tin roof.",
    "What are some good ways to stay focused while working from home?",
]
EXTRACTION_PROMPT = PROMPTS[3]
EXTRACTION_SCHEMA = {
    "type": "object",
    "properties": {"people": {"type": "array", "items": {"type": "string"}},
                   "dates": {"type": "array", "items": {"type": "string"}}},
    "required": ["people", "dates"],
}
# The scripted first reply breaks JSON the way models do (a trailing comma); the second is fine.
BROKEN_JSON = '{"people": ["田中", "佐藤"], "dates": ["2024-03-01"],}'
REPAIRED_JSON = '{"people": ["田中", "佐藤"], "dates": ["2024-03-01"]}'
STREAM_PROMPT = PROMPTS[4]

_EPILOG = """\
examples:
  llmroute demo                    offline, against the embedded fake gateway (no key needed)
  llmroute demo --batch-size 200   a bigger batch
  LLMROUTE_API_KEY=sk-... llmroute demo --base-url https://gateway.example/v1
                                   the same steps against a real gateway (the calls are billed);
                                   the 429, repair and fallback steps are skipped there

exit codes: 0 every step succeeded, 1 a step failed, 2 bad usage (e.g. a gateway without a key),
130 interrupted."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Declare ``llmroute demo``."""
    p = subparsers.add_parser(
        "demo", help="the whole job offline, against an embedded fake gateway",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG,
        description="Run the main job end to end against llmroute's FakeGateway on 127.0.0.1: "
                    "routing in four languages, a waited-out 429, a fallback, a cost cap, a "
                    "JSON extraction repaired in a second turn, a streamed answer, a batch with "
                    "its progress line, and a report per model (requests, tokens, cost, p50/p95 "
                    "latency). Needs no key and no network. With --base-url, or "
                    "LLMROUTE_BASE_URL (then OPENAI_BASE_URL) set, the same steps run against "
                    "that gateway with the key from LLMROUTE_API_KEY (then OPENAI_API_KEY).")
    p.add_argument("--batch-size", type=int, default=None,
                   help="items in the batch step (default %d offline, %d on a real gateway)"
                        % (OFFLINE_BATCH_SIZE, LIVE_BATCH_SIZE))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--base-url", metavar="URL",
                       help="run against this OpenAI-compatible gateway instead (default: "
                            "$LLMROUTE_BASE_URL, then $OPENAI_BASE_URL, else offline)")
    where.add_argument("--offline", action="store_true",
                       help="use the embedded fake gateway even when LLMROUTE_BASE_URL is set")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``llmroute demo``; returns the exit code."""
    try:
        base_url, api_key = _gateway(args)
        if args.batch_size is not None and args.batch_size <= 0:
            raise UsageError("--batch-size must be greater than 0")
    except UsageError as problem:
        print_error(_COMMAND, problem)
        return EXIT_USAGE
    size = args.batch_size or (LIVE_BATCH_SIZE if base_url else OFFLINE_BATCH_SIZE)
    from ..errors import ConfigError, LLMRouteError

    try:
        return run_demo(sys.stdout, batch_size=size, base_url=base_url, api_key=api_key)
    except ConfigError as problem:  # e.g. a base URL that is not http(s)
        print_error(_COMMAND, problem)
        return EXIT_USAGE
    except LLMRouteError as problem:
        sys.stdout.flush()
        print_error(_COMMAND, _summary(problem))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error(_COMMAND, "interrupted")
        return EXIT_INTERRUPTED


def _summary(problem: Exception) -> str:
    """A failed step in one readable line: for a whole route, each model's error by name."""
    from ..errors import AllModelsFailedError

    if not isinstance(problem, AllModelsFailedError) or not problem.errors:
        return str(problem)
    errors = problem.errors
    names = ", ".join("%s (%s)" % (model, detail if isinstance(detail, str)
                                   else type(detail).__name__) for model, detail in errors)
    first = errors[0][1]
    return "every model of the route failed: %s; the first said: %s" % (
        names, " ".join(str(first).split())[:_EXCERPT])


def _env(names: Sequence[str]) -> Optional[str]:
    for name in names:
        value = os.environ.get(name)
        if value and value.strip():
            return value
    return None


def _gateway(args: argparse.Namespace) -> Tuple[Optional[str], Optional[str]]:
    """``(base_url, api_key)`` of a real gateway, or ``(None, None)`` to run offline."""
    if args.offline:
        return None, None
    base_url = args.base_url or _env(_URL_VARIABLES)
    if not base_url:
        return None, None
    api_key = _env(_KEY_VARIABLES)
    if not api_key:
        given = "--base-url" if args.base_url else "LLMROUTE_BASE_URL (or OPENAI_BASE_URL)"
        raise UsageError("%s names a real gateway but no API key is set: set LLMROUTE_API_KEY "
                         "(or OPENAI_API_KEY), or pass --offline" % given)
    return base_url, api_key


def _line(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")


def _usd(value: Optional[Decimal]) -> str:
    return "n/a" if value is None else "$%.6f" % value


def _pairs(pairs: Any) -> str:
    return "; ".join("%s: %s" % pair for pair in pairs)


def _task(result: Any) -> str:
    return getattr(result.task, "value", result.task)


def run_demo(out: TextIO = sys.stdout, *, batch_size: int = OFFLINE_BATCH_SIZE,
             base_url: Optional[str] = None, api_key: Optional[str] = None) -> int:
    """Run the demo, writing a report to ``out``; returns a process exit code.

    Offline (no ``base_url``) against an embedded FakeGateway; else against ``base_url`` with
    ``api_key``, skipping the steps that need scripted failures. Raises ``ConfigError`` for a
    bad URL or key and the ``LLMRouteError`` of a step that failed.
    """
    from ..testing import FakeGateway

    started = time.monotonic()
    if base_url is not None:
        return _run_steps(out, base_url, api_key, None, batch_size, started)
    # chunk_delay spaces the streamed deltas, so a terminal shows them arriving.
    with FakeGateway(latency=0.01, chunk_delay=0.02) as gw:
        return _run_steps(out, gw.base_url, _FAKE_KEY, gw, batch_size, started)


def _run_steps(out: TextIO, base_url: str, api_key: Optional[str], gw: Any, batch_size: int,
               started: float) -> int:
    """Every step in turn, then the report; ``gw`` is the scriptable gateway, or None."""
    # Imported here so that `import llmroute` stays free of the server and the router.
    from ..client import Client
    from ..costs import CostTracker
    from ..limits import RateLimiter
    from ..retry import RetryPolicy
    from ..router import Router

    tracker = CostTracker()
    limiter = RateLimiter(rpm=6000, tpm=10_000_000, max_concurrent=16)
    # Offline, retries wait 50 ms, not the default half second: the demo stays quick.
    retry = RetryPolicy(max_retries=2, initial_delay=0.05) if gw is not None else None
    with Client(base_url, api_key, retry=retry, limiter=limiter, tracker=tracker) as client:
        if gw is not None:
            _line(out, "llmroute demo: an OpenAI-compatible fake gateway at %s" % gw.base_url)
        else:
            _line(out, "llmroute demo: the gateway at %s (its calls are billed; steps that "
                       "need scripted failures are skipped)" % client.base_url)
        router = Router(client)
        _route_by_task(out, router)
        _wait_out_a_429(out, gw, client)
        _fall_back(out, gw, router, client.retry.max_retries)
        _cap_the_cost(out, router)
        _extract_json_with_a_repair(out, gw, router)
        _stream_an_answer(out, router)
        failed = _run_a_batch(out, router, batch_size)
        _print_report(out, tracker, router.stats())
    _print_footer(out, gw, time.monotonic() - started)
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _route_by_task(out: TextIO, router: Any) -> None:
    _line(out, "\n1. Each prompt goes to the model its task calls for")
    for prompt in PROMPTS:
        result = router.complete(prompt)
        _line(out, "  %-16s -> %-17s %-8s %s  %6.1f ms  | %s" % (
            _task(result), result.model, result.routed_via, _usd(result.cost_usd),
            result.latency_ms, prompt.splitlines()[0][:48]))


def _wait_out_a_429(out: TextIO, gw: Any, client: Any) -> None:
    _line(out, "\n2. A 429 with Retry-After is waited out, with one Idempotency-Key")
    if gw is None:
        _line(out, "  " + SKIPPED)
        return
    from ..testing import Reply

    gw.script("gpt-5.4", Reply(status=429, headers={"Retry-After": "0.2"}))
    result = client.chat("gpt-5.4", [{"role": "user", "content": "ping"}])
    keys = {r.header("Idempotency-Key") for r in gw.requests[-2:]}
    _line(out, "  attempts=%d, latency %.0f ms, same key on both tries: %s"
          % (result.attempts, result.latency_ms, len(keys) == 1))


def _fall_back(out: TextIO, gw: Any, router: Any, max_retries: int) -> None:
    _line(out, "\n3. A failing model hands the call to its fallback")
    if gw is None:
        _line(out, "  " + SKIPPED)
        return
    from ..testing import Reply

    gw.script("claude-opus-4.6", *[Reply(status=503)] * (max_retries + 1))
    result = router.complete("Prove that the square root of 2 is irrational.")
    _line(out, "  task=%s, answered by %s (routed_via=%s), tried: %s" % (
        _task(result), result.model, result.routed_via, _pairs(result.tried)))


def _cap_the_cost(out: TextIO, router: Any) -> None:
    _line(out, "\n4. A cost cap skips models whose worst case is over it, before sending")
    result = router.complete("Calculate 17 * 23 + 4 and show the steps.",
                             max_cost_usd=Decimal("0.001"), max_tokens=200)
    _line(out, "  math, max_cost_usd=$0.001 -> %s (routed_via=%s), cost %s" % (
        result.model, result.routed_via, _usd(result.cost_usd)))
    _line(out, "  skipped: %s" % _pairs(result.tried))


def _extract_json_with_a_repair(out: TextIO, gw: Any, router: Any) -> None:
    """Step 5: the first reply is broken JSON; its parse error goes back to the model."""
    _line(out, "\n5. A JSON extraction whose first reply does not parse is repaired in a "
               "second turn")
    if gw is None:
        _line(out, "  " + SKIPPED)
        return
    gw.script_any(BROKEN_JSON, REPAIRED_JSON)
    result = router.complete_json(EXTRACTION_PROMPT, schema=EXTRACTION_SCHEMA)
    repair_turn = gw.requests[-1].json["messages"][-1]["content"]
    _line(out, "  reply 1 from %s: %s" % (result.turns[0].model, result.turns[0].content))
    for error in result.errors:
        _line(out, "  parse error: %s" % error)
    _line(out, "  repair turn sent to the model: %s" % repair_turn)
    _line(out, "  reply 2 parsed and matches the schema: %s" % json.dumps(
        result.data, ensure_ascii=False))
    _line(out, "  repairs=%d, %d turns, cost %s over both" % (
        result.repairs, len(result.turns), _usd(result.cost_usd)))


def _routed_model(router: Any, messages: Sequence[Mapping[str, Any]]
                  ) -> Tuple[str, str, Mapping[str, Any]]:
    """``(task, model, params)``: the model ``router.complete`` would send ``messages`` to first.

    The router has no streaming call, so the stream goes to this model with ``Client.stream``:
    the router's own candidate rules (params adapted to the model, window and cost filters,
    priority order), then the first model that is not cooling down.
    """
    from .. import _candidates as cand
    from ..classification import classify
    from ..tokens import estimate_tokens

    task = classify(messages=messages).task.value
    found = cand.build_candidates(router.routes[task], {}, messages, estimate_tokens(messages),
                                  router.client.catalog, router.max_cost_usd)
    p50s = {model: s.p50_ms for model, s in router.stats().items()}
    ordered, _ = cand.order_candidates(found, router.priority, task, p50s)
    health = router.health()
    usable = [c for c in ordered if c.skip is None and health[c.model].state != "cooling"]
    first = (usable or ordered)[0]
    return task, first.model, first.params


def _stream_an_answer(out: TextIO, router: Any) -> None:
    """Step 6: each delta is written and flushed the moment it arrives."""
    messages = [{"role": "user", "content": STREAM_PROMPT}]
    task, model, params = _routed_model(router, messages)
    _line(out, "\n6. A streamed answer, printed as it arrives (%s -> %s, Client.stream)"
          % (task, model))
    out.write("  ")
    deltas = 0
    with router.client.stream(model, messages, **params) as stream:
        for delta in stream:
            out.write(delta.replace("\n", "\n  "))
            out.flush()
            deltas += 1
        result = stream.result()
    _line(out)
    first = stream.first_token_ms
    _line(out, "  %d deltas, the first after %s, the whole answer after %.1f ms, cost %s" % (
        deltas, "n/a" if first is None else "%.1f ms" % first, result.latency_ms,
        _usd(result.cost_usd)))


class _ProgressSink:
    """Where the batch's progress line goes: redrawn in place on a terminal; elsewhere (a
    log, a pipe) only its last line is kept, to be printed once the batch is done."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.last = ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        if self.tty:
            self.out.write(text.replace("\r", "\r  "))
        elif text.strip():
            self.last = text.strip()

    def flush(self) -> None:
        self.out.flush()


def _run_a_batch(out: TextIO, router: Any, batch_size: int) -> int:
    """Step 7; returns how many items failed."""
    from ..batching import batch
    from ..progress import is_terminal

    _line(out, "\n7. A batch of %d prompts on 8 threads, in input order, with its progress "
               "line" % batch_size)
    items = [PROMPTS[i % len(PROMPTS)] for i in range(batch_size)]
    sink = _ProgressSink(out, is_terminal(out))
    outcome = batch(router.complete, items, max_workers=8, progress=sink)
    if not sink.tty:
        _line(out, "  " + sink.last)
    for text in str(outcome).splitlines():
        _line(out, "  " + text)
    return outcome.failed


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else "%.1f" % value


def _print_report(out: TextIO, tracker: Any, stats: Mapping[str, Any]) -> None:
    """Requests, tokens and cost from the CostTracker; latency from ``Router.stats()``."""
    _line(out, "\nReport per model (requests, errors, tokens and cost: the CostTracker; "
               "p50/p95 of the routed answers: Router.stats())")
    _line(out, "  %-18s %8s %6s %8s %11s %8s %8s" % (
        "model", "requests", "errors", "tokens", "cost", "p50 ms", "p95 ms"))
    snapshot = tracker.snapshot()
    for model, totals in sorted(snapshot.by_model.items()):
        latency = stats.get(model)
        _line(out, "  %-18s %8d %6d %8d %11s %8s %8s" % (
            model, totals.requests, totals.errors,
            totals.prompt_tokens + totals.completion_tokens, _usd(totals.cost_usd),
            _ms(latency.p50_ms if latency else None), _ms(latency.p95_ms if latency else None)))
    _line(out, "  %-18s %8d %6d %8d %11s" % (
        "total", snapshot.requests, snapshot.errors,
        snapshot.prompt_tokens + snapshot.completion_tokens, _usd(snapshot.total_cost_usd)))


def _print_footer(out: TextIO, gw: Any, seconds: float) -> None:
    seen = "" if gw is None else "; the gateway saw %d requests" % len(gw.requests)
    _line(out, "\nDone in %.2f s%s." % (seconds, seen))
