"""The PostgreSQL store, for a fleet of hosts sharing one ledger (``pip install llmroute[postgres]``).

Imported only when a ``postgresql://`` ledger is created. Same table, same integer money, same
reports as SQLite; rows go in with ``COPY`` in one transaction per batch, and schema changes are
serialized across hosts by a transaction-scoped advisory lock.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Sequence

from .rows import COLUMNS
from .schema import TABLE, VERSION_TABLE, LedgerError, check_version, migrations

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("a postgresql:// ledger needs psycopg 3: pip install 'llmroute[postgres]'"
                      ) from err

__all__ = ["PostgresStore"]

# pg_advisory_xact_lock key: any fixed 64-bit number, the same in every llmroute process.
_SCHEMA_LOCK_KEY = 0x6C6C6D726F757465  # "llmroute"
_COPY = "COPY %s (%s) FROM STDIN" % (TABLE, ", ".join(COLUMNS))


def _describe(dsn: str) -> str:
    """host:port/dbname of a DSN, without the user's password."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgresql://(unparsable DSN)"
    return "postgresql://%s:%s/%s" % (info.get("host", "localhost"), info.get("port", "5432"),
                                      info.get("dbname", ""))


class PostgresStore:
    """Connections to one PostgreSQL database holding the ledger table."""

    dialect = "postgresql"
    param = "%s"
    errors = (psycopg.Error,)

    def __init__(self, dsn: str, *, connect_timeout: float = 10.0) -> None:
        self._dsn = dsn
        self.where = _describe(dsn)
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return "PostgresStore(%s)" % self.where  # never the DSN: it may hold a password

    def connect(self, *, create: bool = False, ensure: bool = True) -> Any:
        try:
            conn = psycopg.connect(self._dsn, autocommit=True,
                                   connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.Error as err:
            raise LedgerError("cannot connect to ledger %s: %s"
                              % (self.where, type(err).__name__)) from None
        try:
            if ensure:
                self._ensure_schema(conn, create)
        except psycopg.Error as err:
            conn.close()
            raise LedgerError("ledger %s: %s" % (self.where, err)) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: Any, create: bool) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            exists = conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()[0]
            version = 0
            if exists:
                found = conn.execute("SELECT max(version) FROM " + VERSION_TABLE).fetchone()[0]
                version = int(found or 0)
            check_version(version, self.where)
            steps = migrations(self.dialect, version)
            if not steps:
                return
            if version == 0 and not create:
                raise LedgerError("%s holds no llmroute ledger" % (self.where,))
            for _, statements in steps:
                for sql in statements:
                    conn.execute(sql)
            conn.execute("CREATE TABLE IF NOT EXISTS %s (version INTEGER NOT NULL)"
                         % VERSION_TABLE)
            conn.execute("DELETE FROM " + VERSION_TABLE)
            conn.execute("INSERT INTO %s (version) VALUES (%%s)" % VERSION_TABLE, (steps[-1][0],))

    def insert(self, conn: Any, records: Sequence[tuple]) -> None:
        with conn.transaction():
            with conn.cursor() as cur:
                with cur.copy(_COPY) as copy:
                    for record in records:
                        copy.write_row(record)

    def fetch(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        return conn.execute(sql, tuple(params)).fetchall()

    def iterate(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        with conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            while True:
                chunk = cur.fetchmany(10_000)
                if not chunk:
                    return
                yield from chunk

    def delete(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> int:
        with conn.transaction():
            return conn.execute(sql, tuple(params)).rowcount
