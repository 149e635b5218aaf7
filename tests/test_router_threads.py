"""One Router shared by 32 threads against the FakeGateway: typed outcomes, exact costs, and a
cooldown that every thread honours."""
from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal


import llmroute
from llmroute.costs import CostTracker
from llmroute.health import CooldownPolicy
from llmroute.retry import RetryPolicy
from llmroute.router import RouteResult, Router
from llmroute.testing import FakeGateway, Reply

GPT, GPT41 = "gpt-5.4", "gpt-4.1"
THREADS = 32
ROUTES = {"general": [GPT, GPT41]}


class Alternating:
    """A responder failing every ``every``-th request of each listed model with a 503."""

    def __init__(self, every):
        self.every = every  # model -> n
        self._lock = threading.Lock()  # guards _counts
        self._counts = {model: itertools.count(1) for model in every}

    def __call__(self, request):
        n = self.every.get(request.model)
        if n is None:
            return None
        with self._lock:
            i = next(self._counts[request.model])
        return Reply(status=503) if i % n == 0 else None


def run_all(router, prompts):
    """Route every prompt on THREADS threads; LLMRouteErrors are outcomes, others are bugs."""
    def one(prompt):
        try:
            return router.complete(prompt, task="general")
        except llmroute.LLMRouteError as err:
            return err

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, prompts, timeout=60))


def make_client(gw, **kwargs):
    return llmroute.Client(gw.base_url, "sk-test-key-123456", tracker=CostTracker(),
                           retry=RetryPolicy(max_retries=0, initial_delay=0, jitter=0),
                           pool_maxsize=THREADS, **kwargs)


def test_2000_prompts_on_32_threads_end_typed_and_costs_add_up_exactly():
    prompts = ["question %d: what is %d + %d?" % (i, i, i) for i in range(2000)]
    responder = Alternating({GPT: 2, GPT41: 25})
    with FakeGateway(responder=responder) as gw, make_client(gw) as client:
        # A short real-time cooldown, so circuits open, probe and close during the run.
        router = Router(client, routes=ROUTES,
                        cooldown=CooldownPolicy(failures=5, window=0.05, cooldown=0.02))
        started = time.monotonic()
        outcomes = run_all(router, prompts)
        elapsed = time.monotonic() - started
        results = [o for o in outcomes if isinstance(o, RouteResult)]
        failures = [o for o in outcomes if isinstance(o, llmroute.LLMRouteError)]
        assert len(results) + len(failures) == len(prompts)  # nothing else came back
        assert results and failures
        assert all(isinstance(f, llmroute.AllModelsFailedError) for f in failures)
        assert {r.routed_via for r in results} == {"primary", "fallback"}
        snapshot = client.tracker.snapshot()
        assert snapshot.total_cost_usd == sum((r.cost_usd for r in results), Decimal(0))
        assert snapshot.requests == len(results)
        stats = router.stats()
        for model in (GPT, GPT41):
            assert stats[model].errors == snapshot.by_model[model].errors
            assert stats[model].count == min(snapshot.by_model[model].requests, 256)
        # Each prompt sends at most one request per model: nothing resent after success.
        assert len(gw.requests) <= 2 * len(prompts)
        assert elapsed < 30, "2000 routed calls took %.1fs" % elapsed


def test_cooldown_engages_holds_for_every_thread_and_expires(clock):
    responder = Alternating({GPT: 2})
    with FakeGateway(responder=responder) as gw, \
            make_client(gw, clock=clock, sleep=clock.sleep) as client:
        router = Router(client, routes=ROUTES,
                        cooldown=CooldownPolicy(failures=3, window=60.0, cooldown=30.0))
        first = run_all(router, ["a%d" % i for i in range(128)])
        assert all(isinstance(r, RouteResult) for r in first)
        health = router.health()[GPT]
        assert health.state == "cooling" and health.cooling_until == clock() + 30.0

        engaged = len(gw.requests_for(GPT))
        clock.advance(29.0)  # still inside the cooldown
        during = run_all(router, ["b%d" % i for i in range(256)])
        assert len(gw.requests_for(GPT)) == engaged  # no thread sent it anything
        assert all(r.model == GPT41 and r.routed_via == "fallback" for r in during)
        assert all("cooling down" in r.tried[0][1] for r in during)

        clock.advance(1.5)  # past the cooldown: one probe goes through
        gw.responder = None
        probe = router.complete("c", task="general")
        assert probe.model == GPT and probe.routed_via == "primary"
        assert len(gw.requests_for(GPT)) == engaged + 1
        assert router.health()[GPT].state == "ok"
        after = run_all(router, ["d%d" % i for i in range(64)])
        assert all(r.model == GPT for r in after)
