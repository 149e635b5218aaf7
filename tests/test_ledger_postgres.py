"""The PostgreSQL ledger: the same schema and guarantees as SQLite, a version table, a clear
error for a newer ledger or a database without one, and a DSN's password kept out of errors."""
from __future__ import annotations

import os
import socket
import threading
import time
from decimal import Decimal

import pytest

from llmroute.ledger import Ledger, LedgerError, LedgerRow, LedgerVersionError


def _psycopg():
    return pytest.importorskip("psycopg", reason="psycopg is not installed")


def test_round_trip_with_exact_money_and_a_version_table(postgres_dsn):
    psycopg = _psycopg()
    cost = Decimal("0.000000123456")
    with Ledger(postgres_dsn) as ledger:
        threads = [threading.Thread(target=lambda: [
            ledger.record(LedgerRow(time.time(), "gpt-5.4", cost_usd=cost, prompt_tokens=3))
            for _ in range(250)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ledger.flush()
        assert ledger.count() == 1000 and ledger.spent_usd() == cost * 1000
        assert ledger.token_totals()["prompt_tokens"] == 3000
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT version FROM llmroute_schema").fetchall() == [(1,)]
        assert conn.execute("SELECT SUM(cost_units) FROM llmroute_calls").fetchone()[0] == 123456000


def test_a_ledger_newer_than_the_code_is_a_clear_error(postgres_dsn):
    psycopg = _psycopg()
    Ledger(postgres_dsn).close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE llmroute_schema SET version = 5")
    with pytest.raises(LedgerVersionError, match="schema version 5, newer than the 1"):
        Ledger(postgres_dsn)


def test_a_database_without_a_ledger_is_not_created_when_reading(postgres_dsn):
    psycopg = _psycopg()
    with pytest.raises(LedgerError, match="holds no llmroute ledger"):
        Ledger(postgres_dsn, create=False)
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT to_regclass('llmroute_schema')").fetchone()[0] is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_rows_without_breaking_the_parents_connection(
        postgres_dsn):
    ledger = Ledger(postgres_dsn, flush_interval=30)
    ledger.record(LedgerRow(time.time(), "parent"))
    assert ledger.flush()  # the parent's writer holds an open connection now
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for _ in range(20):
                ledger.record(LedgerRow(time.time(), "child"))
            code = 0 if ledger.close(timeout=10) and ledger.dropped == 0 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    ledger.record(LedgerRow(time.time(), "parent"))
    assert ledger.flush() and ledger.errors == 0  # the inherited connection still works
    rows = dict(ledger.fetch("SELECT model, COUNT(*) FROM llmroute_calls GROUP BY model"))
    assert rows == {"parent": 2, "child": 20}
    ledger.close()


def test_an_unreachable_server_is_a_ledger_error_without_the_password():
    _psycopg()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    dsn = "postgresql://app:s3cret-pw@127.0.0.1:%d/ledger" % port
    with pytest.raises(LedgerError) as info:
        Ledger(dsn)
    assert "s3cret-pw" not in str(info.value) and "127.0.0.1:%d/ledger" % port in str(info.value)
