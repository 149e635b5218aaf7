"""The SQLite store: a file in WAL mode with a busy timeout, safe for many processes at once.

Writers take ``BEGIN IMMEDIATE`` so two processes never both hold a read lock and then both
ask to write (SQLite's deadlock case, which surfaces as "database is locked" at once); with
the busy timeout they queue instead. Only the ledger's writer threads ever see such an error.
"""
from __future__ import annotations

import os
import sqlite3
from typing import Any, Iterator, List, Sequence

from .rows import COLUMNS
from .schema import (TABLE, LedgerError, check_version, current_version, mask_password,
                     migrations)

__all__ = ["SQLiteStore"]

_INSERT = "INSERT INTO %s (%s) VALUES (%s)" % (TABLE, ", ".join(COLUMNS),
                                               ", ".join("?" * len(COLUMNS)))


class SQLiteStore:
    """Connections to one ledger file; each thread that reads or writes opens its own."""

    dialect = "sqlite"
    param = "?"

    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.where = mask_password(self.path)  # what messages show: never a password
        self.busy_timeout = busy_timeout

    def connect(self, *, create: bool = False, ensure: bool = True) -> sqlite3.Connection:
        """Open the file; ``create`` makes a new ledger, ``ensure`` checks and migrates it."""
        if not create and not os.path.exists(self.path):
            raise LedgerError("ledger %s does not exist" % (self.where,))
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as err:
            raise LedgerError("cannot open ledger %s: %s" % (self.where, err)) from None
        try:
            if ensure:
                self._ensure_schema(conn, create)
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a process kill
        except sqlite3.DatabaseError as err:
            conn.close()
            raise LedgerError("%s is not a ledger: %s" % (self.where, err)) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection, create: bool) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        check_version(version, self.where)
        if version == current_version():
            return
        if version == 0 and not self._is_empty(conn):
            raise LedgerError("%s is an SQLite database but not an llmroute ledger" % self.where)
        if version == 0 and not create:
            raise LedgerError("%s is not a ledger (no llmroute schema)" % (self.where,))
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise LedgerError("%s: cannot switch the file to WAL mode" % (self.where,))
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process?
            check_version(version, self.where)
            for step, statements in migrations(self.dialect, version):
                for sql in statements:
                    conn.execute(sql)
                conn.execute("PRAGMA user_version = %d" % step)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _is_empty(conn: sqlite3.Connection) -> bool:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                             "AND name NOT LIKE 'sqlite_%' AND name != ?", (TABLE,)).fetchone()
        return found is None

    def insert(self, conn: sqlite3.Connection, records: Sequence[tuple]) -> None:
        """Write ``records`` in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, records)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def fetch(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        return conn.execute(sql, tuple(params)).fetchall()

    def iterate(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
                ) -> Iterator[tuple]:
        cursor = conn.execute(sql, tuple(params))
        while True:
            chunk = cursor.fetchmany(10_000)
            if not chunk:
                return
            yield from chunk

    def delete(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = conn.execute(sql, tuple(params)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return count

    # The errors a writer retries (and a reader reports as a LedgerError).
    errors = (sqlite3.Error,)
