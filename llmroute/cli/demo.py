"""``llmroute demo``: the main job end to end, offline, against an embedded FakeGateway.

It routes prompts in four languages, shows a 429 being waited out, a failing model being
replaced by its fallback, a budget cap and a batch, and prints what each cost. Nothing leaves
127.0.0.1; the figures printed are the ones measured in this run.
"""
from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any, Optional, TextIO

from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error

__all__ = ["add_parser", "run", "run_demo"]

PROMPTS = [
    "Write a Python function that removes duplicates from a list but keeps the order.",
    "방정식 2x + 3 = 11을 풀어 주세요. 풀이 과정도 보여 주세요.",
    "请用三句话总结下面这篇文章的要点：\n\n" + "城市公园在夏季吸引了大量游客，管理部门增加了清洁人员和夜间照明。" * 3,
    "次の文章から人名と日付をすべて抽出して JSON で返してください。\n\n"
    "2024年3月1日、田中さんは大阪で佐藤さんと会った。",
    "Write a short poem about autumn rain on a tin roof.",
    "What are some good ways to stay focused while working from home?",
]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Declare ``llmroute demo``."""
    p = subparsers.add_parser(
        "demo", help="route prompts offline against an embedded fake gateway",
        description="Run the main job end to end against llmroute's FakeGateway on 127.0.0.1: "
                    "routing in four languages, a waited-out 429, a fallback, a cost cap and a "
                    "batch, with what each cost. Needs no key and no network.")
    p.add_argument("--batch-size", type=int, default=40, help="items in the batch step")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``llmroute demo``; returns the exit code."""
    if args.batch_size <= 0:
        print_error("llmroute demo", "--batch-size must be greater than 0")
        return EXIT_USAGE
    return run_demo(sys.stdout, batch_size=args.batch_size)


def _line(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")


def _usd(value: Optional[Decimal]) -> str:
    return "n/a" if value is None else "$%.6f" % value


def _pairs(pairs: Any) -> str:
    return "; ".join("%s: %s" % pair for pair in pairs)


def run_demo(out: TextIO = sys.stdout, *, batch_size: int = 40) -> int:
    """Run the demo, writing a report to ``out``; returns a process exit code."""
    # Imported here so that `import llmroute` stays free of the server and the router.
    from ..client import Client
    from ..costs import CostTracker
    from ..limits import RateLimiter
    from ..retry import RetryPolicy
    from ..router import Router
    from ..testing import FakeGateway

    tracker = CostTracker()
    limiter = RateLimiter(rpm=6000, tpm=10_000_000, max_concurrent=16)
    retry = RetryPolicy(max_retries=2, initial_delay=0.05)
    with FakeGateway(latency=0.01) as gw:
        _line(out, "llmroute demo: an OpenAI-compatible fake gateway at %s" % gw.base_url)
        with Client(gw.base_url, "demo-key-not-a-secret", retry=retry, limiter=limiter,
                    tracker=tracker) as client:
            router = Router(client)
            _route_by_task(out, router)
            _wait_out_a_429(out, gw, client)
            _fall_back(out, gw, router, retry.max_retries)
            _cap_the_cost(out, router)
            failed = _run_a_batch(out, router, batch_size)
        _print_totals(out, tracker, len(gw.requests))
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _route_by_task(out: TextIO, router: Any) -> None:
    _line(out, "\n1. Each prompt goes to the model its task calls for")
    for prompt in PROMPTS:
        result = router.complete(prompt)
        _line(out, "  %-16s -> %-17s %-8s %s  %6.1f ms  | %s" % (
            getattr(result.task, "value", result.task), result.model, result.routed_via,
            _usd(result.cost_usd), result.latency_ms, prompt.splitlines()[0][:48]))


def _wait_out_a_429(out: TextIO, gw: Any, client: Any) -> None:
    from ..testing import Reply

    _line(out, "\n2. A 429 with Retry-After is waited out, with one Idempotency-Key")
    gw.script("gpt-5.4", Reply(status=429, headers={"Retry-After": "0.2"}))
    result = client.chat("gpt-5.4", [{"role": "user", "content": "ping"}])
    keys = {r.header("Idempotency-Key") for r in gw.requests[-2:]}
    _line(out, "  attempts=%d, latency %.0f ms, same key on both tries: %s"
          % (result.attempts, result.latency_ms, len(keys) == 1))


def _fall_back(out: TextIO, gw: Any, router: Any, max_retries: int) -> None:
    from ..testing import Reply

    _line(out, "\n3. A failing model hands the call to its fallback")
    gw.script("claude-opus-4.6", *[Reply(status=503)] * (max_retries + 1))
    result = router.complete("Prove that the square root of 2 is irrational.")
    _line(out, "  task=%s, answered by %s (routed_via=%s), tried: %s" % (
        getattr(result.task, "value", result.task), result.model, result.routed_via,
        _pairs(result.tried)))


def _cap_the_cost(out: TextIO, router: Any) -> None:
    _line(out, "\n4. A cost cap skips models whose worst case is over it, before sending")
    result = router.complete("Calculate 17 * 23 + 4 and show the steps.",
                             max_cost_usd=Decimal("0.001"), max_tokens=200)
    _line(out, "  math, max_cost_usd=$0.001 -> %s (routed_via=%s), cost %s" % (
        result.model, result.routed_via, _usd(result.cost_usd)))
    _line(out, "  skipped: %s" % _pairs(result.tried))


def _run_a_batch(out: TextIO, router: Any, batch_size: int) -> int:
    """Step 5; returns how many items failed."""
    from ..batching import batch

    _line(out, "\n5. A batch of %d prompts on 8 threads, in input order" % batch_size)
    items = [PROMPTS[i % len(PROMPTS)] for i in range(batch_size)]
    outcome = batch(router.complete, items, max_workers=8)
    for text in str(outcome).splitlines():
        _line(out, "  " + text)
    return outcome.failed


def _print_totals(out: TextIO, tracker: Any, gateway_requests: int) -> None:
    _line(out, "\nTotals by model (from the CostTracker):")
    snapshot = tracker.snapshot()
    for model, totals in sorted(snapshot.by_model.items()):
        _line(out, "  %-18s %4d requests %7d tokens %s" % (
            model, totals.requests, totals.prompt_tokens + totals.completion_tokens,
            _usd(totals.cost_usd)))
    _line(out, "  total %s over %d requests; the gateway saw %d requests"
          % (_usd(snapshot.total_cost_usd), snapshot.requests, gateway_requests))
