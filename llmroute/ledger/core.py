"""``Ledger``: one row per ``Client`` call in SQLite (a file) or PostgreSQL (a fleet), read back as
totals for reports and budgets.

Recording never raises into the call and costs the call's thread a few microseconds: rows are
written by a ``RowWriter`` thread. Reading (reports, budgets, pruning) uses its own connection.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ..costs import units_to_usd
from .rows import STATUS_OK, LedgerRow
from .schema import TABLE, LedgerError, mask_password
from .writer import (DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_PENDING, DEFAULT_PUT_TIMEOUT, RowWriter,
                     forget_inherited, track_fork)

__all__ = ["Ledger", "open_shared", "resolve_ledger", "to_us", "split_units_sql", "join_units"]

Target = Union[str, "os.PathLike[str]"]
When = Union[None, str, date, datetime]

_PG_SCHEMES = ("postgresql://", "postgres://")
#: A libpq keyword conninfo string ("host=db port=5432 dbname=x"): PostgreSQL, not a file name.
_PG_KEYWORDS = re.compile(r"\s*(?:host|hostaddr|port|dbname|user|password|passfile|service|"
                          r"sslmode|connect_timeout|application_name|options)\s*=")

# Sums of integer money split in two (whole micro-dollars and the remainder) so that neither
# SQLite's 64-bit SUM can overflow before 9.2 trillion dollars; joined exactly in Python.
_SPLIT = 1_000_000


def split_units_sql(column: str) -> str:
    """Two SQL sums whose ``join_units`` is the exact SUM(column) of non-negative integers."""
    return "SUM(%s / %d), SUM(%s %% %d)" % (column, _SPLIT, column, _SPLIT)


def join_units(high: Any, low: Any) -> int:
    return int(high or 0) * _SPLIT + int(low or 0)


_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.(\d+)")


def _iso_for_python(text: str) -> str:
    """ISO 8601 text as every supported Python's ``fromisoformat`` reads it: ``Z`` as
    ``+00:00``, and fractional seconds as six digits (3.9 and 3.10 take only 3 or 6)."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return _FRACTION.sub(lambda m: "%s.%s" % (m.group(1), (m.group(2) + "000000")[:6]), text)


def to_us(when: When, what: str = "time") -> Optional[int]:
    """Microseconds since the epoch (UTC) of a date (midnight UTC), datetime or ISO 8601 text.

    A naive datetime or text without an offset is taken as UTC. Raises ``ValueError`` naming
    ``what`` for anything else.
    """
    if when is None:
        return None
    if isinstance(when, str):
        text = when.strip()
        try:
            if len(text) == 10:
                when = date.fromisoformat(text)
            else:
                when = datetime.fromisoformat(_iso_for_python(text))
        except ValueError:
            raise ValueError("%s must be an ISO 8601 date or time (2026-11-01 or "
                             "2026-11-01T12:00:00Z), got %r" % (what, when)) from None
    if isinstance(when, datetime):
        moment = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    elif isinstance(when, date):
        moment = datetime(when.year, when.month, when.day, tzinfo=timezone.utc)
    else:
        raise ValueError("%s must be a date, datetime or ISO 8601 text, got %r" % (what, when))
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _open_store(target: Target, busy_timeout: float) -> Any:
    if isinstance(target, str) and (target.startswith(_PG_SCHEMES)
                                    or _PG_KEYWORDS.match(target)):
        from .postgres import PostgresStore  # psycopg is imported only here
        return PostgresStore(target)
    if not isinstance(target, (str, os.PathLike)) or not os.fspath(target):
        raise ValueError("ledger must be a file path or a postgresql:// URL, got %r"
                         % (mask_password(target) if isinstance(target, str) else target,))
    from .sqlite import SQLiteStore  # sqlite3 is imported only here
    return SQLiteStore(os.fspath(target), busy_timeout=busy_timeout)


class Ledger:
    """A durable record of calls. Share one per process; safe from many threads and processes.

    ``Ledger(path)`` opens or creates a SQLite file; ``Ledger("postgresql://...")`` a
    PostgreSQL table (``llmroute[postgres]``). ``create=False`` refuses a missing or foreign
    database (``LedgerError``); a ledger written by a newer llmroute is ``LedgerVersionError``.
    Prompts are stored only with ``store_prompts=True``; the API key never.
    """

    def __init__(self, target: Target, *, store_prompts: bool = False, create: bool = True,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 max_pending: int = DEFAULT_MAX_PENDING,
                 put_timeout: float = DEFAULT_PUT_TIMEOUT, busy_timeout: float = 30.0) -> None:
        if not isinstance(store_prompts, bool):
            raise ValueError("store_prompts must be True or False, got %r" % (store_prompts,))
        self._store = _open_store(target, busy_timeout)
        self.where = self._store.where
        self.dialect = self._store.dialect
        self.store_prompts = store_prompts
        # Guards _reader: the connection used for reports, budgets and pruning.
        self._read_lock = threading.Lock()
        self._reader: Any = self._store.connect(create=create)
        self._writer = RowWriter(self._store, flush_interval=flush_interval,
                                 max_pending=max_pending, put_timeout=put_timeout)
        track_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: open a reader of its own (the fork hook calls this)."""
        forget_inherited(self._reader)
        self._read_lock = threading.Lock()
        self._reader = None

    # Recording ---------------------------------------------------------------------------------
    def record(self, row: LedgerRow) -> None:
        """Queue one row for writing; never raises."""
        self._writer.record(row)

    def record_call(self, model: str, *, result: Any = None, error: Optional[BaseException] = None,
                    latency_ms: Optional[float] = None, attempts: Optional[int] = None,
                    task: Optional[str] = None, routed_via: Optional[str] = None,
                    tag: Optional[str] = None, messages: Any = None) -> None:
        """Record one call from its ``ChatResult`` (or the error it raised); never raises."""
        try:
            self._writer.record(self._row(model, result, error, latency_ms, attempts, task,
                                          routed_via, tag, messages))
        except Exception:  # noqa: BLE001 - recording must never fail the user's call
            self._writer.drop(1, "a row could not be built from the call's result")

    def _row(self, model: str, result: Any, error: Optional[BaseException],
             latency_ms: Optional[float], attempts: Optional[int], task: Optional[str],
             routed_via: Optional[str], tag: Optional[str], messages: Any) -> LedgerRow:
        prompt = None
        if self.store_prompts and messages is not None:
            prompt = json.dumps(messages, ensure_ascii=False, default=str)
        if result is None:
            return LedgerRow(time.time(), model, type(error).__name__ if error else "error",
                             latency_ms=latency_ms or 0.0, attempts=attempts or 1, task=task,
                             routed_via=routed_via, tag=tag, prompt=prompt,
                             request_id=getattr(error, "request_id", None))
        usage = result.usage
        return LedgerRow(
            time.time(), model, STATUS_OK,
            usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
            (usage.cached_tokens or 0) if usage else 0, result.cost_usd,
            getattr(result, "gateway_cost_usd", None),
            result.latency_ms if latency_ms is None else latency_ms,
            result.attempts if attempts is None else attempts,
            task, routed_via, result.request_id, tag, prompt)

    @property
    def dropped(self) -> int:
        """Rows given up on (queue full past ``put_timeout``, or refused by the database)."""
        return self._writer.dropped

    @property
    def errors(self) -> int:
        """Failed writes (each retried); the first was logged."""
        return self._writer.errors

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def pending(self) -> int:
        return self._writer.pending

    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Block until every row recorded so far is in the database (False on timeout)."""
        return self._writer.flush(timeout)

    def close(self, timeout: Optional[float] = 10.0) -> bool:
        """Write every pending row and stop; True when nothing was left unwritten."""
        done = self._writer.close(timeout)
        with self._read_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        return done

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Ledger(%s, written=%d, dropped=%d)" % (self.where, self.written, self.dropped)

    # Reading -----------------------------------------------------------------------------------
    def _with_reader(self, method: str, sql: str, params: Sequence[Any]) -> Any:
        with self._read_lock:
            if self._reader is None:
                self._reader = self._store.connect(create=False)
            try:
                return getattr(self._store, method)(self._reader, sql, params)
            except self._store.errors as err:
                raise LedgerError("ledger %s: %s" % (self.where, err)) from None

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        """Run a read query (``?`` placeholders are adapted to the backend)."""
        return self._with_reader("fetch", self._sql(sql), params)

    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """Rows of a read query, fetched in chunks (the read lock is held until exhausted)."""
        with self._read_lock:
            if self._reader is None:
                self._reader = self._store.connect(create=False)
            try:
                yield from self._store.iterate(self._reader, self._sql(sql), params)
            except self._store.errors as err:
                raise LedgerError("ledger %s: %s" % (self.where, err)) from None

    def _sql(self, sql: str) -> str:
        return sql if self._store.param == "?" else sql.replace("%", "%%").replace("?", "%s")

    @staticmethod
    def time_filter(since: When = None, until: When = None) -> Tuple[str, List[int]]:
        """A WHERE clause (``since`` inclusive, ``until`` exclusive) and its parameters."""
        start, end = to_us(since, "since"), to_us(until, "until")
        if start is not None and end is not None and start > end:
            raise ValueError("since (%s) is after until (%s)" % (since, until))
        clauses, params = [], []
        if start is not None:
            clauses.append("ts_us >= ?")
            params.append(start)
        if end is not None:
            clauses.append("ts_us < ?")
            params.append(end)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def spent_usd(self, since: When = None, until: When = None) -> Decimal:
        """Exact total cost of the rows in [since, until)."""
        where, params = self.time_filter(since, until)
        high, low = self.fetch("SELECT %s FROM %s%s" % (split_units_sql("cost_units"), TABLE,
                                                        where), params)[0]
        return units_to_usd(join_units(high, low))

    def count(self, since: When = None, until: When = None) -> int:
        where, params = self.time_filter(since, until)
        return int(self.fetch("SELECT COUNT(*) FROM %s%s" % (TABLE, where), params)[0][0])

    def token_totals(self, since: When = None, until: When = None, model: Optional[str] = None
                     ) -> Dict[str, int]:
        """Prompt, completion and cached tokens of the successful calls in a period."""
        where, params = self.time_filter(since, until)
        where += (" AND " if where else " WHERE ") + "status = ?"
        params.append(STATUS_OK)
        if model is not None:
            where += " AND model = ?"
            params.append(model)
        row = self.fetch("SELECT SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), "
                         "COUNT(*) FROM %s%s" % (TABLE, where), params)[0]
        return {"prompt_tokens": int(row[0] or 0), "completion_tokens": int(row[1] or 0),
                "cached_tokens": int(row[2] or 0), "requests": int(row[3] or 0)}

    def prune(self, before: When) -> int:
        """Delete the rows older than ``before``; returns how many went."""
        cutoff = to_us(before, "before")
        if cutoff is None:
            raise ValueError("before must be a date or time, not None")
        with self._read_lock:
            if self._reader is None:
                self._reader = self._store.connect(create=False)
            try:
                return self._store.delete(self._reader, self._sql(
                    "DELETE FROM %s WHERE ts_us < ?" % TABLE), (cutoff,))
            except self._store.errors as err:
                raise LedgerError("ledger %s: %s" % (self.where, err)) from None


# One Ledger per (process, target) for ledgers named by path (Client(ledger=path), the
# LLMROUTE_LEDGER variable), so many clients share one writer thread.
_shared: Dict[Tuple[int, str], Ledger] = {}
_shared_lock = threading.Lock()  # guards _shared


def open_shared(target: Target, **options: Any) -> Ledger:
    """The process's ``Ledger`` for ``target``, created on first use."""
    key = (os.getpid(), os.fspath(target) if not isinstance(target, str) else target)
    with _shared_lock:
        ledger = _shared.get(key)
        if ledger is None:
            ledger = _shared[key] = Ledger(target, **options)
        return ledger



def resolve_ledger(ledger: Any) -> Optional[Ledger]:
    """What ``Client(ledger=...)`` means: a ``Ledger`` as given, a path or URL as the process's
    shared ``Ledger`` for it, ``None`` as ``$LLMROUTE_LEDGER`` (read now) or no ledger."""
    if ledger is None:
        ledger = os.environ.get("LLMROUTE_LEDGER") or None
        if ledger is None:
            return None
    if isinstance(ledger, Ledger):
        return ledger
    if isinstance(ledger, (str, os.PathLike)) and os.fspath(ledger):
        return open_shared(ledger)
    raise ValueError("ledger must be an llmroute.Ledger, a file path or a postgresql:// URL, "
                     "got %r" % (ledger,))
