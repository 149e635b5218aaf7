"""8 processes x 8 threads write 20,000 calls into one ledger (SQLite, then PostgreSQL): every
row lands exactly once, totals match the processes' CostTrackers exactly, nothing is dropped
and no "database is locked" (or any other error) reaches a caller."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from llmroute.ledger import Ledger

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_ledger_worker.py")
PROCESSES, THREADS, TOTAL_CALLS = 8, 8, 20_000


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "fleet.db")
    return request.getfixturevalue("postgres_dsn")


def test_8_processes_x_8_threads_write_20000_calls_exactly(target):
    Ledger(target).close()  # create the schema once, as a deploy step would
    per_process = TOTAL_CALLS // PROCESSES
    procs = [subprocess.Popen([sys.executable, WORKER, target, str(THREADS), str(per_process),
                               str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for seed in range(PROCESSES)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "database is locked" not in err
        reports.append(json.loads(out))
    for report in reports:
        assert report["raised"] == [] and report["dropped"] == 0 and report["closed"]
    with Ledger(target, create=False) as ledger:
        assert ledger.count() == TOTAL_CALLS
        expected = sum((Decimal(r["cost"]) for r in reports), Decimal(0))
        assert ledger.spent_usd() == expected  # exact: integer units, not rounded floats
        assert ledger.spent_usd().quantize(Decimal("1e-9")) == expected.quantize(Decimal("1e-9"))
        tokens = ledger.token_totals()
        assert tokens["requests"] == sum(r["requests"] for r in reports)
        assert tokens["prompt_tokens"] == sum(r["prompt_tokens"] for r in reports)
        assert tokens["completion_tokens"] == sum(r["completion_tokens"] for r in reports)
        errors = ledger.fetch("SELECT COUNT(*) FROM llmroute_calls WHERE status != 'ok'")[0][0]
        assert errors == sum(r["errors"] for r in reports)
