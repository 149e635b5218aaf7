"""One process of the many-process ledger test: N threads each make calls and record them.

    python tests/_ledger_worker.py TARGET THREADS CALLS SEED

Prints one JSON line: the process's CostTracker totals, the ledger's dropped and error counts,
and any exception a recording call raised (there must be none).
"""
from __future__ import annotations

import json
import os
import random
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from llmroute.catalog import default_catalog  # noqa: E402
from llmroute.costs import CostTracker  # noqa: E402
from llmroute.errors import RateLimitError  # noqa: E402
from llmroute.ledger import Ledger  # noqa: E402
from llmroute.results import ChatResult, Usage  # noqa: E402


def main() -> None:
    target, threads, calls, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ledger = Ledger(target)
    tracker = CostTracker()
    catalog = default_catalog()
    models = list(catalog.names())
    raised = []

    def work(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        for _ in range(index, calls, threads):
            model = rng.choice(models)
            try:
                if rng.random() < 0.05:
                    tracker.add_error(model)
                    ledger.record_call(model, error=RateLimitError("429", status_code=429),
                                       latency_ms=rng.uniform(5, 50), task="code", tag="w")
                    continue
                prompt, completion = rng.randint(1, 200_000), rng.randint(1, 8_000)
                cached = rng.randint(0, prompt // 2)
                cost = catalog.spec(model).cost(prompt, completion, cached)
                tracker.add(model, prompt_tokens=prompt, completion_tokens=completion,
                            cost_usd=cost)
                result = ChatResult(content="x", model=model, finish_reason="stop",
                                    usage=Usage(prompt, completion, prompt + completion, cached),
                                    cost_usd=cost, latency_ms=rng.uniform(100, 5000))
                ledger.record_call(model, result=result, task="general", routed_via="primary",
                                   tag="w%d" % seed)
            except Exception as err:  # noqa: BLE001 - the test asserts nothing reached here
                raised.append(repr(err))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    closed = ledger.close(timeout=30)
    snap = tracker.snapshot()
    print(json.dumps({"cost": str(snap.total_cost_usd), "requests": snap.requests,
                      "errors": snap.errors, "prompt_tokens": snap.prompt_tokens,
                      "completion_tokens": snap.completion_tokens, "dropped": ledger.dropped,
                      "ledger_errors": ledger.errors, "closed": closed, "raised": raised}))


if __name__ == "__main__":
    main()
