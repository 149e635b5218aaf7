"""RedisTokenBucket: ``TokenBucket``'s interface and semantics, shared by every process on Redis.

Each operation is one Lua script, so it is atomic however many processes share the bucket; the
refill runs on the server's clock (Redis ``TIME``), so hosts with skewed clocks agree. As in
memory, the level may go negative: a caller takes its tokens at once and sleeps off the debt
the script computed, so callers are served in arrival order and nobody polls.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

from .. import _checks as checks
from ..errors import BackendUnavailableError, RateLimitTimeout
from . import redis_client as rc

__all__ = ["RedisTokenBucket"]

_ACQUIRE = rc.Script("bucket_acquire", rc.LUA_PRELUDE + r"""
local rate, cap, n, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local now = now_s()
local level = bucket_level(KEYS[1], rate, cap, now)
local wait = bucket_wait(level, n, rate)
if max_wait >= 0 and wait > max_wait then return {0, num(wait)} end
bucket_store(KEYS[1], level - n, rate, cap, now)
return {1, num(wait)}
""")

_TRY_ACQUIRE = rc.Script("bucket_try_acquire", rc.LUA_PRELUDE + r"""
local rate, cap, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_s()
local level = bucket_level(KEYS[1], rate, cap, now)
if level + EPS >= n then
  bucket_store(KEYS[1], level - n, rate, cap, now)
  return 1
end
return 0
""")

# ARGV[3]: tokens to take (> 0, may leave a debt) or give back (< 0, up to the capacity).
_ADJUST = rc.Script("bucket_adjust", rc.LUA_PRELUDE + r"""
local rate, cap, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_s()
local level = bucket_level(KEYS[1], rate, cap, now) - delta
if level > cap then level = cap end
bucket_store(KEYS[1], level, rate, cap, now)
return num(level)
""")

_PEEK = rc.Script("bucket_peek", rc.LUA_PRELUDE + r"""
local rate, cap, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local level = bucket_level(KEYS[1], rate, cap, now_s())
return {num(level), num(bucket_wait(level, n, rate))}
""")


class RedisTokenBucket:
    """A token bucket on Redis: ``rate`` tokens per second, bursts up to ``capacity``, shared by
    every process that names the same ``key`` on the same Redis.

    ``redis`` is a ``redis://``/``rediss://``/``unix://`` URL or a client instance. The Redis key
    is ``llmroute:{key/bucket}:tb`` (one hash tag); it expires once the bucket is full again.
    Redis failures raise ``BackendUnavailableError`` (after one failure, at once until a probe
    finds Redis again); ``RateLimiter(backend=...)`` is the variant that falls back instead.
    """

    def __init__(self, redis: Any, key: str, rate: float, capacity: float, *,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        self._rate = checks.number("rate", rate, above=0)
        self._capacity = checks.number("capacity", capacity, above=0)
        self.key = rc.check_name("key", key)
        self.redis_key = rc.key_prefix(key, "bucket") + "tb"
        self._client = rc.connect(redis, what="redis")
        self._where = rc.describe(redis)
        self._sleep = checks.callable_("sleep", sleep)
        self._guard = rc.Guard(self._client, what="RedisTokenBucket(%r)" % key,
                               on_error="raise")

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds (the burst); a new bucket starts full."""
        return self._capacity

    def _check(self, n: Any) -> float:
        try:
            return checks.number("n", n, above=0, maximum=self._capacity)
        except ValueError as err:
            raise ValueError("cannot take %r tokens from a bucket of capacity %g: %s"
                             % (n, self._capacity, err)) from None

    def _run(self, script: rc.Script, doing: str, *args: Any) -> Any:
        if not self._guard.up:
            raise BackendUnavailableError("%s: Redis is unreachable (a probe will say when it is "
                                          "back)" % self._guard.what)
        try:
            return script(self._client, (self.redis_key,), (self._rate, self._capacity) + args)
        except self._guard.errors as err:
            self._guard.failed(err, doing)
            raise  # pragma: no cover - failed() raises in "raise" mode

    def acquire(self, n: float = 1, timeout: Optional[float] = None) -> float:
        """Block until ``n`` tokens are ours; return the seconds waited.

        Raises ValueError if ``n <= 0`` or ``n > capacity``, RateLimitTimeout at once, taking
        nothing, if the wait would exceed ``timeout``, BackendUnavailableError if Redis fails.
        """
        n = self._check(n)
        if timeout is not None:
            timeout = max(0.0, checks.number("timeout", timeout))
        granted, wait = self._run(_ACQUIRE, "acquiring tokens", n,
                                  -1 if timeout is None else timeout)
        wait = float(wait)
        if not int(granted):
            raise RateLimitTimeout("waiting %.3fs for %g tokens would exceed the timeout of %.3fs"
                                   % (wait, n, timeout))
        if wait > 0.0:
            self._sleep(wait)
        return wait

    def try_acquire(self, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there now; never blocks. False while others wait."""
        return bool(int(self._run(_TRY_ACQUIRE, "trying for tokens", self._check(n))))

    def wait_time(self, n: float = 1) -> float:
        """Seconds an ``acquire(n)`` made now would wait (0.0 if the tokens are there)."""
        return float(self._run(_PEEK, "reading the level", self._check(n))[1])

    @property
    def level(self) -> float:
        """Tokens available now; negative while earlier callers are still waiting."""
        return float(self._run(_PEEK, "reading the level", 1.0)[0])

    def refund(self, n: float) -> None:
        """Give back ``n`` tokens (an estimate proved too high); the level stays <= capacity."""
        self._run(_ADJUST, "refunding tokens", -checks.number("n", n, minimum=0))

    def consume(self, n: float) -> None:
        """Take ``n`` tokens without waiting (usage found after the fact); may leave a debt."""
        self._run(_ADJUST, "consuming tokens", checks.number("n", n, minimum=0))

    def __repr__(self) -> str:
        return "RedisTokenBucket(%s, key=%r, rate=%g/s, capacity=%g)" % (
            self._where, self.key, self._rate, self._capacity)
