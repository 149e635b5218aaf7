"""One ledger row: what one ``Client`` call did, as a small immutable value built on the call path.

The row keeps what is cheap to take (floats, ints, the result's ``Decimal`` cost); conversion to
the stored form (integer money units, microsecond timestamps) happens on the writer thread.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple, Optional, Tuple

from ..costs import usd_to_units

__all__ = ["LedgerRow", "COLUMNS", "STATUS_OK", "to_record"]

#: ``status`` of a call that returned a result; any other value is the error's type name.
STATUS_OK = "ok"


class LedgerRow(NamedTuple):
    """One call. A NamedTuple, not a dataclass: building it costs well under a microsecond."""

    time: float                      # seconds since the Unix epoch (UTC), ``time.time()``
    model: str
    status: str = STATUS_OK          # "ok" or the error type name, e.g. "RateLimitError"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Optional[Decimal] = None           # None: the model has no price
    gateway_cost_usd: Optional[Decimal] = None   # what the gateway said it charged, if it did
    latency_ms: float = 0.0
    attempts: int = 1
    task: Optional[str] = None
    routed_via: Optional[str] = None
    request_id: Optional[str] = None
    tag: Optional[str] = None
    prompt: Optional[str] = None     # JSON of the messages, only with ``store_prompts=True``


#: Stored columns, in the order ``to_record`` returns them (``id`` is assigned by the database).
COLUMNS: Tuple[str, ...] = (
    "ts_us", "model", "task", "routed_via", "status", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cost_units", "gateway_cost_units", "latency_ms", "attempts", "request_id",
    "tag", "prompt",
)


def _units(amount: Any) -> Optional[int]:
    return None if amount is None else usd_to_units(amount)


def to_record(row: LedgerRow) -> tuple:
    """The row as stored: microseconds UTC, money as integer ``MONEY_UNIT`` counts."""
    return (int(row.time * 1_000_000), row.model, row.task, row.routed_via, row.status,
            int(row.prompt_tokens or 0), int(row.completion_tokens or 0),
            int(row.cached_tokens or 0), _units(row.cost_usd), _units(row.gateway_cost_usd),
            float(row.latency_ms or 0.0), int(row.attempts or 0), row.request_id, row.tag,
            row.prompt)
