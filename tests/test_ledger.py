"""The SQLite ledger: rows as stored, schema versions, the writer's guarantees (threads, fork,
exit, SIGKILL, a database that cannot keep up), and that ``import llmroute`` stays light."""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal

import pytest

from llmroute.costs import MONEY_UNIT, units_to_usd
from llmroute.ledger import Ledger, LedgerError, LedgerRow, LedgerVersionError, schema
from llmroute.ledger.writer import RowWriter
from llmroute.results import ChatResult, Usage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "ledger.db")


def _rows(path):
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM llmroute_calls ORDER BY id")]
    finally:
        conn.close()


def _run(code, *args, timeout=20):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)] + list(args),
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                          text=True, timeout=timeout)


def test_import_llmroute_loads_no_sqlite_and_starts_no_thread():
    out = _run("""
        import sys, threading, llmroute
        llmroute.Ledger, llmroute.estimate_cost  # the ledger package loads, no backend yet
        print(sorted(m for m in ("sqlite3", "psycopg", "llmroute.ledger.sqlite") if m in sys.modules),
              threading.active_count())
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "1"]


def test_a_call_is_stored_with_exact_integer_money_and_no_prompt_by_default(path):
    result = ChatResult(content="hi", model="gpt-5.4", finish_reason="stop",
                        usage=Usage(120, 30, 150, cached_tokens=20), cost_usd=Decimal("0.00261"),
                        latency_ms=812.5, attempts=2, request_id="req-1")
    with Ledger(path) as ledger:
        ledger.record_call("gpt-5.4", result=result, task="code", routed_via="fallback",
                           tag="nightly", messages=[{"role": "user", "content": "secret plan"}])
        ledger.record_call("claude-opus-4.6", error=TimeoutError("slow"), latency_ms=5000.0,
                           attempts=3, task="code", routed_via="primary")
    ok, failed = _rows(path)
    assert ok["model"] == "gpt-5.4" and ok["status"] == "ok"
    assert (ok["prompt_tokens"], ok["completion_tokens"], ok["cached_tokens"]) == (120, 30, 20)
    assert ok["cost_units"] == 2_610_000_000 and units_to_usd(ok["cost_units"]) == Decimal("0.00261")
    assert (ok["task"], ok["routed_via"], ok["tag"], ok["request_id"]) == (
        "code", "fallback", "nightly", "req-1")
    assert ok["latency_ms"] == 812.5 and ok["attempts"] == 2 and ok["prompt"] is None
    assert abs(ok["ts_us"] / 1e6 - time.time()) < 60
    assert failed["status"] == "TimeoutError" and failed["cost_units"] is None
    assert failed["attempts"] == 3 and failed["prompt_tokens"] == 0


def test_prompt_is_stored_only_with_store_prompts(path):
    with Ledger(path, store_prompts=True) as ledger:
        ledger.record_call("m", error=ValueError("x"),
                           messages=[{"role": "user", "content": "안녕"}])
    assert _rows(path)[0]["prompt"] == '[{"role": "user", "content": "안녕"}]'
    with pytest.raises(ValueError, match="store_prompts"):
        Ledger(path, store_prompts=1)


def test_ledger_holds_no_key_column(path):
    with Ledger(path):
        pass
    conn = sqlite3.connect(path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(llmroute_calls)")]
    assert not [c for c in columns if "key" in c or "auth" in c]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(llmroute_calls)")}
    assert {"llmroute_calls_ts", "llmroute_calls_model_ts"} <= indexes
    conn.close()


def test_many_threads_write_every_row_exactly_once(path):
    ledger = Ledger(path)
    cost = Decimal("0.000001234567")

    def work(n):
        for i in range(500):
            ledger.record(LedgerRow(time.time(), "m%d" % n, cost_usd=cost, prompt_tokens=i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.flush()
    assert ledger.count() == 4000 and ledger.dropped == 0 and ledger.errors == 0
    assert ledger.spent_usd() == cost * 4000
    ledger.close()


def test_since_is_inclusive_until_exclusive_and_prune_deletes_older_rows(path):
    day = 86_400
    t0 = 1_764_547_200  # 2025-12-01T00:00:00Z
    with Ledger(path) as ledger:
        for d in range(3):
            ledger.record(LedgerRow(t0 + d * day, "m", cost_usd=Decimal(d + 1)))
        ledger.flush()
        assert ledger.spent_usd(since="2025-12-02") == 5
        assert ledger.spent_usd(since="2025-12-02", until="2025-12-03") == 2
        assert ledger.spent_usd(until="2025-12-02T00:00:00Z") == 1
        with pytest.raises(ValueError, match="since .* is after until"):
            ledger.spent_usd(since="2025-12-03", until="2025-12-02")
        with pytest.raises(ValueError, match="since"):
            ledger.spent_usd(since="yesterday")
        assert ledger.prune("2025-12-02") == 1
        assert ledger.count() == 2


def test_ledger_newer_than_the_code_is_a_clear_error(path):
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerVersionError, match="schema version 99, newer than the 1"):
        Ledger(path)


def test_old_ledger_is_migrated_forward_and_keeps_its_rows(path, monkeypatch):
    with Ledger(path) as ledger:
        ledger.record(LedgerRow(time.time(), "m", cost_usd=Decimal("0.5")))
    monkeypatch.setitem(schema._MIGRATIONS, 2, (
        "ALTER TABLE llmroute_calls ADD COLUMN region TEXT",))
    with Ledger(path) as ledger:
        assert ledger.spent_usd() == Decimal("0.5")
        assert ledger.fetch("SELECT region FROM llmroute_calls") == [(None,)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()


@pytest.mark.parametrize("content, message", [
    (b"this is not a database, just text\n" * 40, "not a ledger"),
    (None, "not an llmroute ledger"),
])
def test_a_file_that_is_not_a_ledger_is_refused(path, content, message):
    if content is None:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (x TEXT)")
        conn.close()
    else:
        with open(path, "wb") as f:
            f.write(content)
    with pytest.raises(LedgerError, match=message):
        Ledger(path)


def test_opening_for_reading_does_not_create_a_ledger(tmp_path):
    missing = str(tmp_path / "missing.db")
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger(missing, create=False)
    assert not os.path.exists(missing)
    with pytest.raises(ValueError, match="ledger must be a file path"):
        Ledger(42)


class _StuckStore:
    """A store whose inserts block until released, or fail: a database that cannot keep up."""

    where = "stuck"
    errors = (OSError,)

    def __init__(self, fail=False):
        self.release = threading.Event()
        self.fail = fail
        self.inserted = []

    def connect(self, **kw):
        return self

    def close(self):
        pass

    def insert(self, conn, records):
        if self.fail:
            raise OSError("disk I/O error")
        self.release.wait(5)
        self.inserted.extend(records)


def test_a_full_queue_waits_at_most_put_timeout_then_drops_and_logs_once(caplog):
    store = _StuckStore()
    writer = RowWriter(store, max_pending=5, batch_size=1, put_timeout=0.05, flush_interval=0.01)
    caplog.set_level(logging.WARNING, logger="llmroute.ledger.writer")
    started = time.perf_counter()
    for i in range(12):
        writer.record(LedgerRow(time.time(), "m"))
    waited = time.perf_counter() - started
    # 1 row in the stuck insert, 5 queued, the rest each waited ~put_timeout and were dropped.
    assert writer.dropped >= 5 and writer.dropped + writer.pending <= 12
    assert waited < 12 * 0.05 + 1.0
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    store.release.set()
    assert writer.close(timeout=5)
    assert len(store.inserted) == 12 - writer.dropped


def test_a_failing_database_is_counted_retried_logged_once_and_never_raised(caplog):
    store = _StuckStore(fail=True)
    sleeps = []
    writer = RowWriter(store, flush_interval=0.01, write_tries=3, sleep=sleeps.append)
    caplog.set_level(logging.WARNING, logger="llmroute.ledger.writer")
    for _ in range(4):
        writer.record(LedgerRow(time.time(), "m"))
    assert writer.flush(timeout=5)
    assert writer.errors == 3 and writer.dropped == 4 and sleeps == [0.05, 0.1]
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "write failed" in m]) == 1
    assert len([m for m in messages if "dropped" in m]) == 1
    writer.close()


def test_writer_options_are_checked():
    with pytest.raises(ValueError, match="flush_interval"):
        RowWriter(_StuckStore(), flush_interval=0)
    with pytest.raises(ValueError, match="max_pending"):
        RowWriter(_StuckStore(), max_pending=True)


def test_rows_are_durable_at_a_normal_exit_without_close(path):
    out = _run("""
        import sys, time
        from decimal import Decimal
        from llmroute.ledger import Ledger, LedgerRow
        ledger = Ledger(sys.argv[1], flush_interval=30)
        for i in range(3000):
            ledger.record(LedgerRow(time.time(), "m", cost_usd=Decimal("0.001")))
    """, path)
    assert out.returncode == 0, out.stderr
    with Ledger(path, create=False) as ledger:
        assert ledger.count() == 3000 and ledger.spent_usd() == 3


def test_sigkill_loses_at_most_the_last_second(path):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from llmroute.ledger import Ledger, LedgerRow
        ledger = Ledger(sys.argv[1])
        for i in range(500):
            ledger.record(LedgerRow(time.time(), "m"))
        print("recorded", flush=True)
        time.sleep(30)
    """), path], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
        text=True)
    try:
        assert proc.stdout.readline().strip() == "recorded"
        time.sleep(1.0)  # rows recorded a second before the kill must have reached the file
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.stdout.close()
    with Ledger(path, create=False) as ledger:
        assert ledger.count() == 500


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_rows_and_not_the_parents(path):
    ledger = Ledger(path, flush_interval=30)
    ledger.record(LedgerRow(time.time(), "parent"))  # starts the parent's writer; stays queued
    pid = os.fork()
    if pid == 0:  # the child: gunicorn --preload forks after the app created its ledger
        code = 1
        try:
            for _ in range(50):
                ledger.record(LedgerRow(time.time(), "child"))
            code = 0 if ledger.close(timeout=5) and ledger.dropped == 0 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    ledger.record(LedgerRow(time.time(), "parent"))
    assert ledger.flush()
    models = [r["model"] for r in _rows(path)]
    assert models.count("child") == 50 and models.count("parent") == 2
    ledger.close()


def test_record_after_close_is_dropped_not_raised(path):
    ledger = Ledger(path)
    ledger.close()
    ledger.record(LedgerRow(time.time(), "m"))
    assert ledger.dropped == 1


def test_money_unit_is_the_costs_module_unit():
    assert MONEY_UNIT == Decimal("1e-12")


def test_a_malformed_row_or_result_is_counted_and_never_raised(path, caplog):
    caplog.set_level(logging.WARNING, logger="llmroute.ledger.writer")
    with Ledger(path) as ledger:
        ledger.record_call("m", result=object())             # not a ChatResult
        ledger.record(LedgerRow(time.time(), "m", prompt_tokens="many"))  # fails in the writer
        ledger.record(LedgerRow(time.time(), "m"))
        assert ledger.flush()
        assert ledger.dropped == 2 and ledger.count() == 1
