"""RedisBudget: one spending limit per period for every process of a namespace.

``Budget(..., backend=...)`` builds one. Money lives in Redis as integers of
``costs.MONEY_UNIT`` changed only with ``HINCRBY`` (Lua numbers are doubles; the limit check
subtracts in Redis integers too and reads only the sign), holds rounded up. A hold is set aside
before a call and replaced by the real cost after it; a hold whose process died expires after
``hold_seconds``. Redis unreachable: the budget fails closed, since it cannot know what the
other processes spent.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, List, Optional, Tuple

from .. import _checks as checks
from ..costs import Budget, Money, units_to_usd, usd_to_units
from ..errors import BudgetExceededError
from . import redis_client as rc

__all__ = ["RedisBudget", "RedisBudgetHold", "DEFAULT_HOLD_SECONDS"]

logger = logging.getLogger(__name__)

#: A hold not committed after this long (its process died) no longer counts against the limit.
DEFAULT_HOLD_SECONDS = 900.0
#: Keys of a period expire this long after its last write (a lifetime budget: after a month idle).
_TTL_SECONDS = {"day": 2 * 86400, "month": 32 * 86400, None: 31 * 86400}
#: HINCRBY works on signed 64-bit integers: the limit stays well inside them.
_MAX_UNITS = 2 ** 62

_BUDGET_LUA = rc.LUA_PRELUDE + r"""
local function neg(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end
local function expire_holds(now)
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', num(now))
  for _, id in ipairs(stale) do
    local amount = redis.call('HGET', KEYS[3], id)
    if amount then
      redis.call('HINCRBY', KEYS[1], 'held', neg(amount))
      redis.call('HDEL', KEYS[3], id)
    end
    redis.call('ZREM', KEYS[2], id)
  end
end
local function touch(ttl_ms)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl_ms) end
end
"""

# KEYS: totals hash, hold expiries (zset), hold amounts (hash)
# ARGV: limit units, amount units, hold id, hold ms, ttl ms -> {granted, spent, held}
_RESERVE = rc.Script("budget_reserve", _BUDGET_LUA + r"""
local now = now_s()
expire_holds(now)
local spent = redis.call('HGET', KEYS[1], 'spent') or '0'
local held = redis.call('HGET', KEYS[1], 'held') or '0'
redis.call('HSET', KEYS[1], 'check', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'check', neg(spent))
redis.call('HINCRBY', KEYS[1], 'check', neg(held))
local left = redis.call('HINCRBY', KEYS[1], 'check', neg(ARGV[2]))
redis.call('HDEL', KEYS[1], 'check')
if left < 0 then return {0, spent, held} end
redis.call('HINCRBY', KEYS[1], 'held', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], num(now + tonumber(ARGV[4]) / 1000), ARGV[3])
touch(tonumber(ARGV[5]))
return {1, spent, held}
""")

# ARGV: hold id ('' none), actual units, ttl ms. A hold already expired just books the cost.
_COMMIT = rc.Script("budget_commit", _BUDGET_LUA + r"""
if ARGV[1] ~= '' then
  local amount = redis.call('HGET', KEYS[3], ARGV[1])
  if amount then
    redis.call('HINCRBY', KEYS[1], 'held', neg(amount))
    redis.call('HDEL', KEYS[3], ARGV[1])
  end
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2]) end
touch(tonumber(ARGV[3]))
return 1
""")

# -> {spent, held}
_STATUS = rc.Script("budget_status", _BUDGET_LUA + r"""
expire_holds(now_s())
return {redis.call('HGET', KEYS[1], 'spent') or '0', redis.call('HGET', KEYS[1], 'held') or '0'}
""")

# ARGV: units to seed, ttl ms -> 1 when this call seeded the period (only the first one does)
_SEED = rc.Script("budget_seed", _BUDGET_LUA + r"""
if redis.call('HSETNX', KEYS[1], 'seeded', '1') == 0 then return 0 end
if ARGV[1] ~= '0' then redis.call('HINCRBY', KEYS[1], 'spent', ARGV[1]) end
touch(tonumber(ARGV[2]))
return 1
""")

SCRIPTS = (_RESERVE, _COMMIT, _STATUS, _SEED)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class RedisBudgetHold:
    """Money set aside on Redis for one call; the interface of ``BudgetHold``."""

    __slots__ = ("amount", "hold_id", "_budget", "_period", "_done", "_lock")

    def __init__(self, budget: "RedisBudget", amount: Decimal, hold_id: str,
                 period: str) -> None:
        self.amount = amount
        self.hold_id = hold_id
        self._budget = budget
        self._period = period
        self._done = False
        self._lock = threading.Lock()  # guards _done

    def commit(self, actual_usd: Optional[Decimal]) -> None:
        """Replace the hold by the actual cost (``None``: the worst case is kept)."""
        self._finish(self.amount if actual_usd is None else actual_usd)

    def release(self) -> None:
        """Give the hold back: the call was not billed."""
        self._finish(Decimal(0))

    def _finish(self, actual: Money) -> None:
        with self._lock:
            done, self._done = self._done, True
        if not done:
            self._budget.settle_hold(self.hold_id, self._period, actual)


class RedisBudget(Budget):
    """A ``Budget`` kept on Redis for every process of ``namespace`` (``Budget(backend=...)``).

    Periods follow each host's UTC calendar (``now``); ``hold_seconds`` bounds how long a hold
    of a crashed process keeps counting. ``reserve`` raises BudgetExceededError, saying so,
    when Redis is unreachable (fail closed); a commit that cannot reach Redis is kept and sent
    with the next call that can.
    """

    def __init__(self, limit_usd: Money, period: Optional[str] = None, *, backend: Any,
                 namespace: str = "default", hold_seconds: float = DEFAULT_HOLD_SECONDS,
                 now: Callable[[], Any] = _utc_now, ledger: Any = None) -> None:
        super().__init__(limit_usd, period, now=now)
        self.namespace = rc.check_name("namespace", namespace)
        self.hold_seconds = checks.number("hold_seconds", hold_seconds, above=0)
        self._limit_units = usd_to_units(self.limit_usd)
        if self._limit_units >= _MAX_UNITS:
            raise ValueError("limit_usd must be below $%s, got %s"
                             % (units_to_usd(_MAX_UNITS), self.limit_usd))
        self._today = now
        self._client = rc.connect(backend)
        self._where = rc.describe(backend)
        self._guard = rc.Guard(self._client, what="Budget(namespace=%r)" % namespace)
        self._prefix = rc.key_prefix(self.namespace, "budget")
        self._ttl_ms = _TTL_SECONDS[period] * 1000
        self._ids = itertools.count(1)
        self._token = uuid.uuid4().hex[:12]
        # Guards _unsettled (commits Redis did not take) and _last (the last totals read).
        self._lock2 = threading.Lock()
        self._unsettled: List[Tuple[str, str, int]] = []
        self._last = (Decimal(0), Decimal(0))
        # With a usage ledger, the first process of each period adds the ledger's total for
        # the period so far to Redis (what was spent before the fleet shared this budget).
        self._ledger = ledger
        self._seeded: Optional[str] = None  # the period this object has seeded (or seen seeded)
        rc.on_fork(self)
        self._seed()

    def after_fork_in_child(self) -> None:
        """A lock held by another thread at fork() stays held in the child: start afresh."""
        self._lock2 = threading.Lock()

    def _period_id(self) -> str:
        if self.period is None:
            return "life"
        now = self._today()
        if self.period == "day":
            return "%04d-%02d-%02d" % (now.year, now.month, now.day)
        return "%04d-%02d" % (now.year, now.month)

    def redis_keys(self, period: Optional[str] = None) -> List[str]:
        """The totals, hold-expiry and hold-amount keys of a period (one hash tag)."""
        base = self._prefix + (period or self._period_id())
        return [base, base + ":holds", base + ":amounts"]

    def _run(self, script: rc.Script, period: str, args: List[Any], doing: str
             ) -> Tuple[bool, Any]:
        if not self._guard.up:
            return False, None
        return rc.run_guarded(self._guard, lambda: script(
            self._client, self.redis_keys(period), args), doing)

    def _closed(self, why: str, amount: Optional[Decimal]) -> BudgetExceededError:
        return BudgetExceededError(
            "the fleet budget of $%s (namespace %r) cannot be checked: %s; failing closed, "
            "nothing was sent" % (self.limit_usd, self.namespace, why),
            limit_usd=self.limit_usd, spent_usd=None, needed_usd=amount)

    def _flush_unsettled(self) -> bool:
        with self._lock2:
            pending, self._unsettled = self._unsettled, []
        for i, (hold_id, period, units) in enumerate(pending):
            ok, _ = self._run(_COMMIT, period, [hold_id, units, self._ttl_ms], "committing")
            if not ok:
                with self._lock2:
                    self._unsettled[:0] = pending[i:]
                return False
        return True

    def _seed(self) -> None:
        period = self._period_id()
        if self._ledger is None or self._seeded == period:
            return
        now = self._today()
        since = None if self.period is None else datetime(
            now.year, now.month, now.day if self.period == "day" else 1, tzinfo=timezone.utc)
        try:
            units = usd_to_units(self._ledger.spent_usd(since=since))
        except Exception as err:  # noqa: BLE001 - a dead ledger must not stop the budget
            logger.warning("budget: cannot read the ledger to seed Redis (%s)",
                           type(err).__name__)
            return
        ok, _ = self._run(_SEED, period, [units, self._ttl_ms], "seeding from the ledger")
        if ok:
            self._seeded = period

    def reserve(self, worst_case_usd: Optional[Money]) -> RedisBudgetHold:
        """Hold ``worst_case_usd`` for the fleet (rounded up to MONEY_UNIT); raises
        BudgetExceededError when spent + held + it would pass the limit, when the model has no
        price, or when Redis is unreachable."""
        if worst_case_usd is None:
            return super().reserve(None)  # raises: an unpriced model cannot be checked
        amount = checks.money("worst_case_usd", worst_case_usd)
        units = usd_to_units(amount, round_up=True)
        if not self._flush_unsettled():
            raise self._closed("Redis is unreachable", amount)
        self._seed()
        period = self._period_id()
        hold_id = "%s:%d:%d" % (self._token, os.getpid(), next(self._ids))
        ok, answer = self._run(_RESERVE, period, [
            self._limit_units, units, hold_id, int(self.hold_seconds * 1000), self._ttl_ms],
            "reserving budget")
        if not ok:
            raise self._closed("Redis is unreachable", amount)
        granted, spent, held = int(answer[0]), _usd(answer[1]), _usd(answer[2])
        with self._lock2:
            self._last = (spent, held)
        if not granted:
            committed = spent + held
            raise BudgetExceededError(
                "fleet budget of $%s (namespace %r) would be exceeded: $%s spent or held, next "
                "call may cost $%s" % (self.limit_usd, self.namespace, committed, amount),
                limit_usd=self.limit_usd, spent_usd=committed, needed_usd=amount)
        return RedisBudgetHold(self, amount, hold_id, period)

    def settle_hold(self, hold_id: str, period: str, actual: Money) -> None:
        """Book ``actual`` in place of the hold (kept for later if Redis is unreachable)."""
        units = usd_to_units(Decimal(actual))
        ok, _ = self._run(_COMMIT, period, [hold_id, units, self._ttl_ms], "committing")
        if not ok:
            logger.debug("budget: keeping a commit of %d units until Redis answers", units)
            with self._lock2:
                self._unsettled.append((hold_id, period, units))

    def charge(self, amount_usd: Money) -> None:
        """Book spending made outside ``reserve`` for the fleet."""
        self.settle_hold("", self._period_id(), checks.money("amount_usd", amount_usd))

    def _totals(self) -> Tuple[Decimal, Decimal]:
        ok, answer = self._run(_STATUS, self._period_id(), [], "reading the budget")
        if ok:
            with self._lock2:
                self._last = (_usd(answer[0]), _usd(answer[1]))
        with self._lock2:
            return self._last

    @property
    def spent_usd(self) -> Decimal:
        """What the fleet spent this period (the last value read while Redis is unreachable)."""
        return self._totals()[0]

    @property
    def remaining_usd(self) -> Decimal:
        spent, held = self._totals()
        return max(self.limit_usd - spent - held, Decimal(0))

    @property
    def backend_up(self) -> bool:
        """False while Redis is unreachable (reserve refuses every call meanwhile)."""
        return self._guard.up

    def __repr__(self) -> str:
        return "RedisBudget(%s, namespace=%r, limit_usd=%s, period=%r)" % (
            self._where, self.namespace, self.limit_usd, self.period)


def _usd(value: Any) -> Decimal:
    return units_to_usd(int(value.decode() if isinstance(value, bytes) else value))
