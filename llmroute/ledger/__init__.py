"""The usage ledger: one row per call in SQLite or PostgreSQL, and reports over it.

Importing this package imports neither ``sqlite3`` nor ``psycopg`` and starts no thread; a
backend loads when the first ``Ledger`` is created.
"""
from __future__ import annotations

from .core import Ledger, open_shared, resolve_ledger
from .rows import STATUS_OK, LedgerRow
from .schema import SCHEMA_VERSION, LedgerError, LedgerVersionError

__all__ = ["Ledger", "LedgerRow", "LedgerError", "LedgerVersionError", "SCHEMA_VERSION",
           "STATUS_OK", "open_shared", "resolve_ledger"]
