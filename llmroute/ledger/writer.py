"""The off-thread writer: calls append rows to a bounded queue, one daemon thread writes batches.

What a caller pays is a deque append (a few microseconds with the row). The thread wakes every
``flush_interval`` seconds, or sooner when a batch is waiting, and writes everything pending in
one transaction per batch, so a SIGKILL loses at most about the last interval of rows. When the
database cannot keep up and the queue is full, a caller waits at most ``put_timeout`` seconds,
then the row is dropped and counted: a ledger never fails or stalls the call it records.

Fork-safe: in a forked child (gunicorn ``--preload``) each writer drops the parent's queue (the
parent writes those rows) and starts its own thread on the child's first row. Writers are
flushed at interpreter exit.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, List, Optional

from .. import _checks as checks
from .rows import LedgerRow, to_record

__all__ = ["RowWriter", "DEFAULT_FLUSH_INTERVAL", "DEFAULT_MAX_PENDING", "DEFAULT_PUT_TIMEOUT"]

log = logging.getLogger(__name__)

#: Seconds between writes: bounds what a SIGKILL can lose.
DEFAULT_FLUSH_INTERVAL = 0.5
#: Rows a process may hold in memory before callers wait (about 100 bytes each).
DEFAULT_MAX_PENDING = 100_000
#: Most a caller waits for room in a full queue before its row is dropped.
DEFAULT_PUT_TIMEOUT = 1.0
#: Rows per transaction: large enough to amortize the commit, small enough to free room fast.
DEFAULT_BATCH_SIZE = 2_000
#: Tries of one batch (backing off 0.05 s doubling to 1 s) before it is dropped and counted.
_WRITE_TRIES = 8
#: How long exit waits for the last rows of each writer.
_EXIT_FLUSH_TIMEOUT = 10.0

# Objects with an ``after_fork_in_child()`` method: writers and ledgers of this process.
_FORK_AWARE: "weakref.WeakSet[Any]" = weakref.WeakSet()
# Connections inherited from the parent: kept referenced and never used nor closed, because
# closing one in the child would end the parent's session on the shared socket.
_INHERITED: List[Any] = []
_hooks_lock = threading.Lock()  # guards the one-time registration below
_hooks_installed = False


def track_fork(obj: Any) -> None:
    """Call ``obj.after_fork_in_child()`` in forked children; flush writers at exit."""
    global _hooks_installed
    with _hooks_lock:
        if not _hooks_installed:
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork_in_child)
            atexit.register(_close_all_at_exit)
            _hooks_installed = True
        _FORK_AWARE.add(obj)


def forget_inherited(conn: Any) -> None:
    """Keep a connection inherited from the parent alive and unused (see ``_INHERITED``)."""
    if conn is not None:
        _INHERITED.append(conn)


def _after_fork_in_child() -> None:
    for obj in list(_FORK_AWARE):
        obj.after_fork_in_child()


def _close_all_at_exit() -> None:
    for obj in list(_FORK_AWARE):
        if isinstance(obj, RowWriter):
            obj.close(timeout=_EXIT_FLUSH_TIMEOUT)


class RowWriter:
    """Queues ``LedgerRow`` values and writes them through ``store`` on one daemon thread."""

    def __init__(self, store: Any, *, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 max_pending: int = DEFAULT_MAX_PENDING,
                 put_timeout: float = DEFAULT_PUT_TIMEOUT,
                 batch_size: int = DEFAULT_BATCH_SIZE, write_tries: int = _WRITE_TRIES,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        flush_interval = checks.number("flush_interval", flush_interval, above=0)
        put_timeout = checks.number("put_timeout", put_timeout, above=0)
        max_pending = checks.number("max_pending", max_pending, minimum=1, integer=True)
        batch_size = checks.number("batch_size", batch_size, minimum=1, integer=True)
        write_tries = checks.number("write_tries", write_tries, minimum=1, integer=True)
        checks.callable_("sleep", sleep)
        self._store = store
        self._flush_interval = float(flush_interval)
        self._max_pending = max_pending
        self._put_timeout = float(put_timeout)
        self._batch_size = batch_size
        self._write_tries = write_tries
        self._sleep = sleep
        self._reset()
        track_fork(self)

    def _reset(self) -> None:
        """Fresh per-process state (at creation and in a forked child)."""
        self._pending: deque = deque()  # appended by callers, popped by the writer thread
        # Guards _busy, _closed, _thread, the counters and the warned flags; callers wait on it
        # for room, flush() for an empty queue.
        self._cond = threading.Condition()
        self._wake = threading.Event()  # set when a batch is waiting, on flush and on close
        self._busy = False       # the thread holds popped rows it has not finished writing
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._conn: Any = None   # the writer thread's connection (also held here, see fork)
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self._warned_drop = False
        self._warned_error = False

    def after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's connection and queue (the fork hook calls this)."""
        forget_inherited(self._conn)
        closed = self._closed
        self._reset()
        self._closed = closed

    # The call's path -------------------------------------------------------------------------
    def record(self, row: LedgerRow) -> None:
        """Queue one row; never raises, waits at most ``put_timeout`` when the queue is full."""
        pending = self._pending
        if len(pending) >= self._max_pending and not self._wait_for_room():
            self.drop(1, "the ledger's queue stayed full for %.1f s (the database is not "
                          "keeping up)" % self._put_timeout)
            return
        if self._closed:
            self.drop(1, "a row was recorded after the ledger was closed")
            return
        pending.append(row)
        if self._thread is None:
            self._start()
        elif len(pending) >= self._batch_size:
            self._wake.set()

    def _wait_for_room(self) -> bool:
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(lambda: len(self._pending) < self._max_pending,
                                       timeout=self._put_timeout)

    def _start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="llmroute-ledger-writer")
                self._thread.start()

    def drop(self, count: int, why: str) -> None:
        with self._cond:
            self.dropped += count
            first = not self._warned_drop
            self._warned_drop = True
        if first:
            log.warning("ledger %s: dropped %d row(s): %s (counted in ledger.dropped; "
                        "logged once)", self._store.where, count, why)

    # The writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                self._drain()
                with self._cond:
                    if self._closed and not self._pending:
                        return
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection may fail
                    pass

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            with self._cond:
                self._busy = True
            batch = []
            try:
                while len(batch) < self._batch_size:
                    batch.append(pending.popleft())
            except IndexError:
                pass
            with self._cond:
                self._cond.notify_all()  # room for callers waiting on a full queue
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, batch: List[LedgerRow]) -> None:
        records = []
        for row in batch:
            try:
                records.append(to_record(row))
            except (TypeError, ValueError, ArithmeticError) as err:
                self._error(err)
                self.drop(1, "a malformed row (%s)" % type(err).__name__)
        delay = 0.05
        for attempt in range(self._write_tries):
            try:
                if self._conn is None:
                    self._conn = self._store.connect(ensure=False)
                self._store.insert(self._conn, records)
                with self._cond:
                    self.written += len(records)
                return
            except Exception as err:  # noqa: BLE001 - any failure of the database driver or
                # the connection must stay inside the ledger: count it, retry, never raise.
                self._error(err)
                conn, self._conn = self._conn, None
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - a broken connection may fail to close
                        pass
                if attempt + 1 < self._write_tries:
                    self._sleep(delay)
                    delay = min(delay * 2, 1.0)
        self.drop(len(records), "the database refused them %d times" % self._write_tries)

    def _error(self, err: BaseException) -> None:
        with self._cond:
            self.errors += 1
            first = not self._warned_error
            self._warned_error = True
        if first:
            log.warning("ledger %s: write failed (%s: %s); retrying, counted in ledger.errors, "
                        "logged once", self._store.where, type(err).__name__,
                        str(err)[:200])

    # Control -------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Wait until every row recorded so far is written; False if ``timeout`` passed first."""
        if self._pending and self._thread is None:
            self._start()
        if self._thread is None:
            return not self._pending
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy,
                                       timeout=timeout)

    def close(self, timeout: Optional[float] = 10.0) -> bool:
        """Write what is pending and stop the thread; True when everything was written."""
        with self._cond:
            self._closed = True
            thread = self._thread
        if thread is None:
            if self._pending:  # rows recorded but never started: write them here
                self._drain()
            return not self._pending
        self._wake.set()
        thread.join(timeout)
        return not thread.is_alive() and not self._pending
