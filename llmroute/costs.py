"""Running cost totals and budgets, in exact ``Decimal`` money, safe to share across threads."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Dict, Mapping, Optional, Union

from . import _checks as checks
from .errors import BudgetExceededError

__all__ = ["ModelTotals", "CostSnapshot", "CostTracker", "Budget", "BudgetHold", "MONEY_UNIT",
           "usd_to_units", "units_to_usd", "parse_usd"]

log = logging.getLogger(__name__)

Money = Union[Decimal, int, str]
_ZERO = Decimal(0)

#: Money kept outside Python (Redis, the ledger) is an integer count of this unit: 10^-12 dollars
#: is finer than every catalog price per token, so sums stay exact in integer arithmetic
#: (Lua numbers are doubles; a float dollar amount would drift).
MONEY_UNIT = Decimal("1e-12")


def usd_to_units(amount: Decimal, *, round_up: bool = False) -> int:
    """``amount`` dollars as an integer count of ``MONEY_UNIT``; holds round up, costs to even."""
    rounding = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int((Decimal(amount) / MONEY_UNIT).to_integral_value(rounding=rounding))


def units_to_usd(units: int) -> Decimal:
    """The exact dollar ``Decimal`` of an integer count of ``MONEY_UNIT``."""
    amount = (Decimal(int(units)) * MONEY_UNIT).normalize()
    # normalize() writes 45000 as 4.5E+4; an integral amount is shown as the integer it is.
    return amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount


def _money(value: Money, what: str) -> Decimal:
    """A non-negative finite Decimal; floats are refused because they are not exact."""
    return checks.money(what, value)


def _count(name: str, value: Any) -> int:
    return checks.number(name, value, minimum=0, integer=True)


@dataclass(frozen=True)
class ModelTotals:
    """What one model has cost so far."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = _ZERO
    unpriced_requests: int = 0


@dataclass(frozen=True)
class CostSnapshot:
    """An immutable copy of a tracker's totals at one moment."""

    by_model: Mapping[str, ModelTotals]

    @property
    def total_cost_usd(self) -> Decimal:
        return sum((t.cost_usd for t in self.by_model.values()), _ZERO)

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.by_model.values())

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.by_model.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.by_model.values())

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.by_model.values())


class _Totals:
    __slots__ = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd",
                 "unpriced_requests")

    def __init__(self) -> None:
        self.requests = self.errors = self.prompt_tokens = self.completion_tokens = 0
        self.unpriced_requests = 0
        self.cost_usd = _ZERO


class CostTracker:
    """Thread-safe running totals per model; ``snapshot()`` returns an immutable copy."""

    def __init__(self) -> None:
        # Guards _totals: model name -> mutable running totals.
        self._lock = threading.Lock()
        self._totals: Dict[str, _Totals] = {}

    def add(self, model: str, *, prompt_tokens: int = 0, completion_tokens: int = 0,
            cost_usd: Optional[Decimal] = None) -> None:
        """Record one successful request (``cost_usd`` ``None`` for an unpriced model)."""
        checks.text("model", model)
        # The usual values (ints, a finite Decimal) pass as they are; anything else gets the full
        # check, which converts what it accepts or raises ValueError naming the argument.
        if type(prompt_tokens) is not int or prompt_tokens < 0:
            prompt_tokens = _count("prompt_tokens", prompt_tokens)
        if type(completion_tokens) is not int or completion_tokens < 0:
            completion_tokens = _count("completion_tokens", completion_tokens)
        if type(cost_usd) is not Decimal or not cost_usd.is_finite() or cost_usd < 0:
            cost_usd = checks.money("cost_usd", cost_usd, allow_none=True)
        with self._lock:
            totals = self._totals.get(model)
            if totals is None:
                totals = self._totals[model] = _Totals()
            totals.requests += 1
            totals.prompt_tokens += prompt_tokens
            totals.completion_tokens += completion_tokens
            if cost_usd is None:
                totals.unpriced_requests += 1
            else:
                totals.cost_usd += cost_usd

    def add_error(self, model: str) -> None:
        """Record one request that ended in an error (nothing billed that we know of)."""
        checks.text("model", model)
        with self._lock:
            totals = self._totals.get(model)
            if totals is None:
                totals = self._totals[model] = _Totals()
            totals.errors += 1

    def snapshot(self) -> CostSnapshot:
        with self._lock:
            copied = {
                model: ModelTotals(t.requests, t.errors, t.prompt_tokens, t.completion_tokens,
                                   t.cost_usd, t.unpriced_requests)
                for model, t in self._totals.items()
            }
        return CostSnapshot(copied)

    @property
    def total_cost_usd(self) -> Decimal:
        with self._lock:
            return sum((t.cost_usd for t in self._totals.values()), _ZERO)

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()

    def __repr__(self) -> str:
        return "CostTracker(total_cost_usd=%s)" % self.total_cost_usd


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


#: Seconds between re-reads of a ledger's period total by a ``Budget`` (each is one SUM query).
DEFAULT_LEDGER_REFRESH = 30.0


class _LedgerTotal:
    """When and how a ``Budget`` re-reads a ledger's total; a failing ledger is logged once."""

    def __init__(self, ledger: Any, refresh_seconds: float, clock: Callable[[], float]) -> None:
        refresh_seconds = checks.number("refresh_seconds", refresh_seconds, minimum=0)
        checks.callable_("clock", clock)
        if not callable(getattr(ledger, "spent_usd", None)):
            raise ValueError("ledger must be an llmroute.Ledger, got %r" % (ledger,))
        self.ledger = ledger
        self.refresh_seconds = float(refresh_seconds)
        self.clock = clock
        # Guards _next and _warned: when the next read is due, whether a failure was logged.
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._warned = False

    def due(self) -> bool:
        with self._lock:
            return self.clock() >= self._next

    def due_now(self) -> None:
        with self._lock:
            self._next = float("-inf")

    def read(self, since: Optional[datetime]) -> Optional[Decimal]:
        """The ledger's total since ``since`` (own rows flushed first), or None on failure."""
        with self._lock:
            self._next = self.clock() + self.refresh_seconds
        try:
            self.ledger.flush(timeout=1.0)
            return self.ledger.spent_usd(since=since)
        except Exception as err:  # noqa: BLE001 - a dead ledger degrades to local totals
            with self._lock:
                first, self._warned = not self._warned, True
            if first:
                log.warning("budget: cannot read the ledger's total (%s); using this "
                            "process's own totals until it answers (logged once)",
                            type(err).__name__)
            return None


class BudgetHold:
    """Money set aside for one call; ``commit(actual)`` books the real cost, ``release()`` none."""

    __slots__ = ("_budget", "amount", "period", "_done")

    def __init__(self, budget: "Budget", amount: Decimal, period: object) -> None:
        self._budget = budget
        self.amount = amount
        #: The budget period the money was set aside in; a hold outliving it books nothing.
        self.period = period
        self._done = False

    def commit(self, actual_usd: Optional[Decimal]) -> None:
        """Replace the hold by the actual cost (``None``: the worst case is kept)."""
        actual_usd = checks.money("actual_usd", actual_usd, allow_none=True)
        if not self._done:
            self._done = True
            self._budget.settle_hold(self, self.amount if actual_usd is None else actual_usd)

    def release(self) -> None:
        """Give the hold back: the call was not billed."""
        if not self._done:
            self._done = True
            self._budget.settle_hold(self, _ZERO)


class Budget:
    """A running spending cap, per day or month (UTC) or for the object's lifetime.

    ``reserve(worst_case)`` sets money aside before a request is sent and raises
    ``BudgetExceededError`` when spent + held + worst case would pass the limit, so a call that
    could overspend is never sent. ``backend=`` (a Redis URL or client) with ``namespace=``
    makes it one budget for every process of the namespace (``backends.redis_budget``).

    With ``ledger=``, the money spent is the ledger's total for the period (read at the start
    and again every ``refresh_seconds``) plus this object's spending since, so a cron job
    stops when the month's budget is spent by all its runs. Not an exact fleet budget: other
    processes' holds and unflushed rows are invisible (see the README for the bound).
    """

    _PERIODS = (None, "day", "month")

    def __new__(cls, *args: Any, backend: Any = None, **kwargs: Any) -> "Budget":
        """With ``backend`` (a Redis URL or client) the budget is the fleet-wide
        ``backends.redis_budget.RedisBudget`` (``namespace=``, ``hold_seconds=``)."""
        if backend is not None and cls is Budget:
            from .backends.redis_budget import RedisBudget
            return super().__new__(RedisBudget)
        return super().__new__(cls)

    def __init__(self, limit_usd: Money, period: Optional[str] = None, *,
                 now: Callable[[], datetime] = _utc_now, ledger: Any = None,
                 refresh_seconds: float = DEFAULT_LEDGER_REFRESH,
                 clock: Callable[[], float] = time.monotonic, backend: None = None) -> None:
        if backend is not None:  # __new__ picked this class: a subclass not made for a backend
            raise ValueError("backend= is not supported by %s" % type(self).__name__)
        if period is not None:
            checks.choice("period", period, ("day", "month"))
        self.limit_usd = _money(limit_usd, "limit_usd")
        checks.callable_("now", now)
        self.period = period
        self._now = now
        # Guards _spent, _held and _period_key: the money booked and set aside this period.
        self._lock = threading.Lock()
        self._spent = _ZERO
        self._held = _ZERO
        self._base = _ZERO  # the ledger's total for the period at the last refresh
        self._period_key = self._key()
        self._ledger = _LedgerTotal(ledger, refresh_seconds, clock) if ledger is not None \
            else None
        if self._ledger is not None:
            self.refresh()

    def refresh(self) -> None:
        """Re-read the period's total from the ledger (no-op without one); never raises."""
        if self._ledger is None:
            return
        with self._lock:
            self._roll()
            key, counted = self._period_key, self._spent
        total = self._ledger.read(self._period_start())
        if total is None:
            return
        with self._lock:
            if key == self._period_key:
                # The ledger now holds what was spent up to the read; keep only what came after.
                self._base = total
                self._spent -= counted

    def _period_start(self) -> Optional[datetime]:
        if self.period is None:
            return None
        now = self._now()
        return datetime(now.year, now.month, now.day if self.period == "day" else 1,
                        tzinfo=timezone.utc)

    def _key(self) -> object:
        if self.period is None:
            return None
        now = self._now()
        return (now.year, now.month, now.day) if self.period == "day" else (now.year, now.month)

    def _roll(self) -> None:
        """Start a new period when the calendar moved on (lock held)."""
        key = self._key()
        if key != self._period_key:
            self._period_key = key
            self._spent = _ZERO
            self._held = _ZERO
            self._base = _ZERO
            if self._ledger is not None:
                self._ledger.due_now()

    def reserve(self, worst_case_usd: Optional[Money]) -> BudgetHold:
        """Hold ``worst_case_usd``; ``None`` (an unpriced model) counts as over any budget."""
        if worst_case_usd is None:
            raise BudgetExceededError(
                "the model has no price, so its cost cannot be checked against the budget of $%s"
                % self.limit_usd, limit_usd=self.limit_usd, spent_usd=self.spent_usd,
                needed_usd=None)
        amount = _money(worst_case_usd, "worst_case_usd")
        if self._ledger is not None and self._ledger.due():
            self.refresh()
        with self._lock:
            self._roll()
            committed = self._base + self._spent + self._held
            if committed + amount > self.limit_usd:
                raise BudgetExceededError(
                    "budget of $%s would be exceeded: $%s spent or held, next call may cost $%s"
                    % (self.limit_usd, committed, amount), limit_usd=self.limit_usd,
                    spent_usd=committed, needed_usd=amount)
            self._held += amount
            return BudgetHold(self, amount, self._period_key)

    def settle_hold(self, hold: BudgetHold, actual: Decimal) -> None:
        """Replace ``hold`` by ``actual`` spending (what ``BudgetHold.commit``/``release`` do)."""
        with self._lock:
            if hold.period != self._period_key:
                self._roll()
                if hold.period != self._period_key:
                    return  # the hold's period is over; its money was cleared with it
            self._held -= hold.amount
            self._spent += actual

    def charge(self, amount_usd: Money) -> None:
        """Book spending made outside ``reserve`` (e.g. restored from a previous run)."""
        amount = _money(amount_usd, "amount_usd")
        with self._lock:
            self._roll()
            self._spent += amount

    @property
    def spent_usd(self) -> Decimal:
        with self._lock:
            self._roll()
            return self._base + self._spent

    @property
    def remaining_usd(self) -> Decimal:
        with self._lock:
            self._roll()
            return max(self.limit_usd - self._base - self._spent - self._held, _ZERO)

    def __repr__(self) -> str:
        return "Budget(limit_usd=%s, period=%r, spent_usd=%s)" % (
            self.limit_usd, self.period, self.spent_usd)


def parse_usd(text: str) -> Decimal:
    """A dollar amount written as text (``"0.25"``, from a command line or a file) as an exact
    ``Decimal``; raises ``ValueError`` unless it is a finite, non-negative number."""
    if not isinstance(text, str):
        raise ValueError("an amount in USD must be text, got %r" % (type(text).__name__,))
    try:
        Decimal(text.strip())
    except ArithmeticError:
        raise ValueError("expected an amount in USD, got %r" % (text[:40],)) from None
    return _money(text.strip(), "amount in USD")
