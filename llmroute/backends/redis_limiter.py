"""RedisRateLimiter: ``RateLimiter``'s limits, pauses and remaining-header levels for a fleet.

``RateLimiter(..., backend=...)`` builds one. Its state lives under one hash tag per namespace
(``llmroute:{NS/limits}:``): the key-wide and per-model RPM/TPM buckets, the pauses, and a
sorted set of concurrency leases scored by expiry. A steady-state call costs two round trips:
``reserve`` (pause check, lease, buckets: one script) and the release (TPM settlement, lease
release, ``x-ratelimit-remaining-*`` levels: one script). One daemon thread per process renews
every lease the process holds, one round trip per limiter every ``lease_seconds / 3``.

When Redis stops answering, ``on_backend_error="local"`` serves from a per-process
``RateLimiter`` at ``1 / expected_processes`` of every limit until a probe finds Redis again;
``"raise"`` raises ``BackendUnavailableError``.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
import uuid
import weakref
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import _checks as checks
from .._headers import (MAX_WAIT_HINT_SECONDS, NOT_PARSED, parse_rate_limit_headers,
                        parse_retry_after)
from ..errors import BackendUnavailableError, RateLimitError, RateLimitTimeout
from ..limits import DEFAULT_BURST_SECONDS, PAUSE_STATUSES, RateLimiter
from . import redis_client as rc

__all__ = ["RedisRateLimiter", "RedisReservation", "DEFAULT_LEASE_SECONDS",
           "SLOT_POLL_SECONDS"]

logger = logging.getLogger(__name__)

#: A crashed worker's concurrency slots come back after this long (live ones are renewed).
DEFAULT_LEASE_SECONDS = 30.0
#: Longest sleep between two tries for a concurrency slot when all are taken (a slot freed by
#: another process sends no signal; the script says when the first lease would expire).
SLOT_POLL_SECONDS = 0.05
#: Times one reserve re-checks a pause that keeps being extended before it gives up.
_MAX_PAUSE_ROUNDS = 8
_EVERY_MODEL = "*"

# Bucket arguments: rate and capacity of the key-wide requests, key-wide tokens, the model's
# requests and the model's tokens bucket (0 0: not configured), in the KEYS order rq tk mrq mtk.
_LIMITER_LUA = rc.LUA_PRELUDE + r"""
local function buckets(first_arg, first_key)
  local list = {}
  for i = 0, 3 do
    local rate, cap = tonumber(ARGV[first_arg + 2 * i]), tonumber(ARGV[first_arg + 2 * i + 1])
    if rate > 0 then
      list[#list + 1] = {key = KEYS[first_key + i], rate = rate, cap = cap,
                         tokens = (i % 2 == 1)}
    end
  end
  return list
end
"""

# KEYS: slots, pause:*, pause:model, rq, tk, mrq, mtk
# ARGV: limit (0: none), lease_ms, lease_id, tokens, max_wait (-1: none), 8 bucket numbers
_RESERVE = rc.Script("limiter_reserve", _LIMITER_LUA + r"""
local limit, lease_ms, lease_id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local tokens, max_wait = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_s()
local paused = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'),
                        tonumber(redis.call('GET', KEYS[3]) or '0'))
if paused > now then return {'paused', num(paused - now)} end
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now))
  if redis.call('ZCARD', KEYS[1]) >= limit then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {'busy', num(tonumber(first[2]) - now)}
  end
end
local list = buckets(6, 4)
local wait, binding = 0, ''
for _, b in ipairs(list) do
  b.n = 1
  if b.tokens then b.n = tokens end
  b.level = bucket_level(b.key, b.rate, b.cap, now)
  local w = bucket_wait(b.level, math.min(b.n, b.cap), b.rate)
  if w > wait then wait, binding = w, b.key end
end
if max_wait >= 0 and wait > max_wait then return {'late', num(wait), binding} end
for _, b in ipairs(list) do
  if b.n > 0 then
    local level = b.level
    if wait > 0 then level = math.min(level, b.cap - wait * b.rate) end
    bucket_store(b.key, level - b.n, b.rate, b.cap, now)
  end
end
if limit > 0 then
  redis.call('ZADD', KEYS[1], num(now + lease_ms / 1000), lease_id)
  redis.call('PEXPIRE', KEYS[1], lease_ms + 1000)
end
return {'ok', num(wait)}
""")

# KEYS: slots, rq, tk, mrq, mtk
# ARGV: lease_id ('' none), token delta (+ take, - give back), requests given back (0 or 1),
#       lower scope ('', 'key', 'model'), lower requests to ('' none), lower tokens to ('' none),
#       8 bucket numbers
_SETTLE = rc.Script("limiter_settle", _LIMITER_LUA + r"""
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
local delta, requests_back, scope = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local low_rq, low_tk = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_s()
for i = 0, 3 do
  local rate, cap = tonumber(ARGV[7 + 2 * i]), tonumber(ARGV[8 + 2 * i])
  if rate > 0 then
    local is_tokens, is_model = (i % 2 == 1), (i >= 2)
    local change = requests_back
    if is_tokens then change = -delta end
    local low = nil
    if (scope == 'key' and not is_model) or (scope == 'model' and is_model) then
      if is_tokens then low = low_tk else low = low_rq end
    end
    if change ~= 0 or low ~= nil then
      local key = KEYS[2 + i]
      local level = bucket_level(key, rate, cap, now) + change
      if level > cap then level = cap end
      if low ~= nil and low < level then level = low end
      bucket_store(key, level, rate, cap, now)
    end
  end
end
return 1
""")

# KEYS: pause key. ARGV: seconds. Keeps a pause already running longer; expires with the pause.
_PAUSE = rc.Script("limiter_pause", rc.LUA_PRELUDE + r"""
local now, seconds = now_s(), tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + seconds <= current then return 0 end
redis.call('SET', KEYS[1], num(now + seconds), 'PX', math.max(1, math.ceil(seconds * 1000)))
return 1
""")

# KEYS: pause:*, pause:model. Returns the seconds left on the longer of the two.
_PAUSE_LEFT = rc.Script("limiter_pause_left", rc.LUA_PRELUDE + r"""
local now = now_s()
local paused = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'),
                        tonumber(redis.call('GET', KEYS[2]) or '0'))
return num(math.max(0, paused - now))
""")

# KEYS: slots. ARGV: lease_ms, lease ids. Extends the leases still alive (not expired or freed).
_RENEW = rc.Script("limiter_renew", rc.LUA_PRELUDE + r"""
local now, lease_ms = now_s(), tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]))
  if score ~= nil and score > now then
    redis.call('ZADD', KEYS[1], 'XX', num(now + lease_ms / 1000), ARGV[i])
    renewed = renewed + 1
  end
end
if renewed > 0 then redis.call('PEXPIRE', KEYS[1], lease_ms + 1000) end
return renewed
""")

# KEYS: slots. Counts live leases (every process of the namespace).
_SLOTS_IN_USE = rc.Script("limiter_slots", rc.LUA_PRELUDE + r"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now_s()))
return redis.call('ZCARD', KEYS[1])
""")

SCRIPTS = (_RESERVE, _SETTLE, _PAUSE, _PAUSE_LEFT, _RENEW, _SLOTS_IN_USE)


class _Renewer:
    """The process's one lease-renewing thread: every ``lease / 3`` it renews each limiter's
    leases in one round trip. Started with the first lease; a forked child starts its own."""

    def __init__(self) -> None:
        # Guards _limiters and _thread.
        self._lock = threading.Lock()
        self._limiters: "weakref.WeakSet[RedisRateLimiter]" = weakref.WeakSet()
        self._thread: Optional[threading.Thread] = None
        self._wake = threading.Event()

    def register(self, limiter: "RedisRateLimiter") -> None:
        """Renew ``limiter``'s leases from now on (a no-op once it is known)."""
        with self._lock:
            if limiter in self._limiters and self._thread is not None:
                return
            self._limiters.add(limiter)
            self._wake.set()  # a shorter lease than the current interval: recompute it
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="llmroute-lease-renewer")
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                limiters = list(self._limiters)
                if not limiters:
                    self._thread = None  # under the lock: a register() now starts a new one
                    return
            interval = min(l.lease_seconds for l in limiters) / 3.0
            self._wake.wait(interval)
            self._wake.clear()
            for limiter in limiters:
                limiter.renew_leases()

    def after_fork_in_child(self) -> None:
        """The parent's thread did not survive the fork: the child's first lease starts one."""
        self._lock = threading.Lock()
        self._thread = None
        self._wake = threading.Event()


_RENEWER = _Renewer()
rc.on_fork(_RENEWER)
_process_token = uuid.uuid4().hex[:12]


class RedisReservation:
    """What one shared ``reserve()`` admitted; the interface of ``Reservation``.

    ``settle()`` and the remaining headers ``observe()`` saw for this call travel to Redis in
    one script: with the ``release()`` when the reservation holds a concurrency slot, else with
    the settlement. Each method is safe to repeat.
    """

    __slots__ = ("model", "tokens", "waited", "lease_id", "_limiter", "_charged", "_pending",
                 "_lower", "_holds_slot", "_released", "_lock", "__weakref__")

    def __init__(self, limiter: "RedisRateLimiter", model: Optional[str], tokens: float,
                 waited: float, lease_id: str) -> None:
        self.model = model
        self.tokens = tokens
        self.waited = waited
        self.lease_id = lease_id
        self._limiter = limiter
        self._charged = tokens
        # Guards _charged, _pending, _lower, _holds_slot and _released.
        self._lock = threading.Lock()
        self._pending = 0.0
        self._lower: Optional[Tuple[str, Optional[float], Optional[float]]] = None
        self._holds_slot = bool(lease_id)
        self._released = False

    @property
    def charged(self) -> float:
        """The TPM tokens this reservation holds now (the estimate until settled)."""
        return self._charged

    def settle(self, actual_tokens: float) -> float:
        """Charge the usage the API counted; returns the change (negative: refunded)."""
        actual = checks.number("actual_tokens", actual_tokens, minimum=0)
        with self._lock:
            delta = actual - self._charged
            self._charged = actual
            self._pending += delta
            now = not self._holds_slot
        if now:
            self._flush(release=False)
        return delta

    def refund(self) -> float:
        """Give back every TPM token still held; returns them."""
        return -self.settle(0)

    def note_levels(self, scope: str, requests: Optional[float],
                    tokens: Optional[float]) -> bool:
        """Keep remaining-header levels to send with the settlement or release; False if the
        reservation is already released (the caller sends them itself)."""
        with self._lock:
            if self._released:
                return False
            if self._lower is not None:
                _, old_rq, old_tk = self._lower
                requests = _lowest(old_rq, requests)
                tokens = _lowest(old_tk, tokens)
            self._lower = (scope, requests, tokens)
            return True

    def release(self) -> None:
        """Free the concurrency slot, sending what is pending; later calls do nothing."""
        self._flush(release=True)

    def _flush(self, release: bool) -> None:
        with self._lock:
            lease = self.lease_id if (release and self._holds_slot) else ""
            if release:
                self._holds_slot = False
                self._released = True
            delta, self._pending = self._pending, 0.0
            lower, self._lower = self._lower, None
        if lease or delta or lower is not None:
            self._limiter.settle_remote(self.model, lease, delta, 0, lower)

    def __enter__(self) -> "RedisReservation":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return "RedisReservation(model=%r, tokens=%g, charged=%g, waited=%.3fs)" % (
            self.model, self.tokens, self._charged, self.waited)


def _lowest(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return b if a is None else a if b is None else min(a, b)


class RedisRateLimiter(RateLimiter):
    """A ``RateLimiter`` whose buckets, pauses and concurrency leases live on Redis.

    Made by ``RateLimiter(..., backend=URL or client, namespace=...)``; the arguments and
    semantics are the in-memory limiter's, plus ``namespace`` (one quota: every process naming
    it shares the limits; never put the API key in it), ``lease_seconds``, ``on_backend_error``
    and ``expected_processes`` (how many processes share the quota: the per-process fallback
    gets that fraction of every limit). The in-memory buckets (``requests_bucket`` …) are that
    per-process fallback.
    """

    def __init__(self, rpm: Optional[float] = None, tpm: Optional[float] = None,
                 max_concurrent: Optional[int] = None, *, backend: Any,
                 namespace: str = "default", lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 on_backend_error: str = "local", expected_processes: Optional[int] = None,
                 model_limits: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 burst_seconds: float = DEFAULT_BURST_SECONDS, pause_scope: str = "model",
                 headers_scope: str = "model", clock: Any = time.monotonic,
                 sleep: Any = time.sleep) -> None:
        super().__init__(rpm, tpm, max_concurrent, model_limits=model_limits,
                         burst_seconds=burst_seconds, pause_scope=pause_scope,
                         headers_scope=headers_scope, clock=clock, sleep=sleep)
        checks.choice("on_backend_error", on_backend_error, rc.ON_BACKEND_ERROR)
        self.namespace = rc.check_name("namespace", namespace)
        self.lease_seconds = checks.number("lease_seconds", lease_seconds, minimum=0.1)
        self.expected_processes = checks.number(
            "expected_processes", expected_processes, minimum=1, integer=True,
            allow_none=on_backend_error == "raise")
        self.on_backend_error = on_backend_error
        self._sleep_for = sleep
        share = 1.0 / (self.expected_processes or 1)
        self._local = RateLimiter(
            None if self.rpm is None else self.rpm * share,
            None if self.tpm is None else self.tpm * share,
            None if self.max_concurrent is None else max(1, int(self.max_concurrent * share)),
            model_limits={m: {k: v * share for k, v in lim.items()}
                          for m, lim in self.model_limits.items()},
            burst_seconds=burst_seconds, pause_scope=pause_scope, headers_scope=headers_scope,
            clock=clock, sleep=sleep)
        self.requests_bucket = self._local.requests_bucket
        self.tokens_bucket = self._local.tokens_bucket
        self._client = rc.connect(backend)
        self._where = rc.describe(backend)
        self._guard = rc.Guard(self._client, what="RateLimiter(namespace=%r)" % namespace,
                               on_error=on_backend_error)
        self._prefix = rc.key_prefix(self.namespace, "limits")
        self._lease_ms = int(self.lease_seconds * 1000)
        # Guards _leases: this process's live lease ids (renewed by the renewer thread).
        self._leases_lock = threading.Lock()
        self._leases: Dict[str, None] = {}
        self._ids = itertools.count(1)
        self._current = threading.local()  # the reservation this thread made last
        rc.on_fork(self)

    # -- keys and arguments -------------------------------------------------------------------

    def redis_keys(self, model: Optional[str] = None) -> Dict[str, str]:
        """The Redis keys a call to ``model`` touches (all under one hash tag)."""
        p = self._prefix
        name = model if model is not None else ""
        return {"slots": p + "slots", "pause_all": p + "pause:" + _EVERY_MODEL,
                "pause_model": p + "pause:" + (name or _EVERY_MODEL),
                "rq": p + "rq", "tk": p + "tk", "mrq": p + "rq:" + name,
                "mtk": p + "tk:" + name}

    def _bucket_args(self, model: Optional[str]) -> List[float]:
        own = self.model_limits.get(model, {}) if model is not None else {}
        args: List[float] = []
        for per_minute in (self.rpm, self.tpm, own.get("rpm"), own.get("tpm")):
            if per_minute is None:
                args += [0, 0]
            else:
                args += [per_minute / 60.0, per_minute * self.burst_seconds / 60.0]
        return args

    def _call(self, script: rc.Script, keys: Tuple[str, ...], args: List[Any],
              doing: str) -> Tuple[bool, Any]:
        if not self._guard.up:
            if self.on_backend_error == "raise":
                self._guard.failed(ConnectionError("still unreachable"), doing)
            return False, None
        return rc.run_guarded(self._guard, lambda: script(self._client, keys, args), doing)

    @property
    def backend_up(self) -> bool:
        """False while Redis is unreachable and the per-process fallback serves."""
        return self._guard.up

    # -- pauses -------------------------------------------------------------------------------

    def _pause_target(self, model: Optional[str]) -> str:
        return model if model is not None and self.pause_scope == "model" else _EVERY_MODEL

    def _set_pause(self, target: str, seconds: float) -> None:
        seconds = min(seconds, MAX_WAIT_HINT_SECONDS)
        key = self._prefix + "pause:" + target
        ok, extended = self._call(_PAUSE, (key,), [repr(seconds)], "setting a pause")
        if not ok:
            self._local.pause(seconds, model=None if target == _EVERY_MODEL else target)
        elif extended:
            logger.info("rate limit: pausing %s for %.3fs in namespace %r",
                        "every model" if target == _EVERY_MODEL else repr(target), seconds,
                        self.namespace)

    def pause(self, seconds: float, *, model: Optional[str] = None) -> None:
        """Hold back every process's requests to ``model`` (every model if None or
        pause_scope="key") for ``seconds``; a pause already running longer is kept."""
        seconds = checks.number("seconds", seconds, minimum=0)
        self._set_pause(self._pause_target(model), seconds)

    def pause_remaining(self, model: Optional[str] = None) -> float:
        """Seconds until requests to ``model`` may be sent again by any process (0.0: now)."""
        keys = self.redis_keys(model)
        ok, left = self._call(_PAUSE_LEFT, (keys["pause_all"], keys["pause_model"]), [],
                              "reading a pause")
        return float(left) if ok else self._local.pause_remaining(model)

    def observe(self, model: Optional[str], status: int,
                headers: Optional[Mapping[str, Any]], *, rate_limit: Any = NOT_PARSED) -> float:
        """``RateLimiter.observe`` for the fleet: pauses are set on Redis at once; remaining
        levels of a 2xx ride on this thread's open reservation (sent with its release)."""
        pause = 0.0
        if status in PAUSE_STATUSES:
            pause = parse_retry_after(headers) or 0.0
            if pause > 0.0:
                self._set_pause(self._pause_target(model), pause)
        info = parse_rate_limit_headers(headers) if rate_limit is NOT_PARSED else rate_limit
        if info is None:
            return pause
        key_wide = model is None or self.headers_scope == "key"
        if key_wide:
            configured = (self.rpm is not None, self.tpm is not None)
        else:
            own = self.model_limits.get(model, {})
            configured = ("rpm" in own, "tpm" in own)
        quota_pause = 0.0
        levels: List[Optional[float]] = [None, None]
        for i, (remaining, reset) in enumerate(((info.remaining_requests, info.reset_requests),
                                                (info.remaining_tokens, info.reset_tokens))):
            if remaining is None:
                continue
            if configured[i]:
                levels[i] = max(0.0, float(remaining))
            if remaining <= 0 and reset:
                quota_pause = max(quota_pause, reset)
        if quota_pause > 0.0:
            self._set_pause(_EVERY_MODEL if key_wide else model, quota_pause)
        if levels != [None, None]:
            scope = "key" if key_wide else "model"
            current = getattr(self._current, "reservation", None)
            current = current() if current is not None else None
            if current is None or current.model != model or not current.note_levels(
                    scope, levels[0], levels[1]):
                self.settle_remote(model, "", 0.0, 0, (scope, levels[0], levels[1]))
        return min(max(pause, quota_pause), MAX_WAIT_HINT_SECONDS)

    # -- reserving ----------------------------------------------------------------------------

    def _validate(self, tokens: Any, model: Any) -> float:
        tokens = checks.number("tokens", tokens, minimum=0)
        if model is not None and not isinstance(model, str):
            raise ValueError("model must be a string or None, got %r" % (model,))
        own_tpm = self.model_limits.get(model, {}).get("tpm") if model is not None else None
        for tpm, whose in ((self.tpm, "tpm"), (own_tpm, "model_limits[%r] tpm" % model)):
            if tpm is not None and tokens > tpm:
                raise ValueError("reservation of %g tokens (prompt estimate + max_tokens) "
                                 "exceeds %s=%g; lower max_tokens or raise %s"
                                 % (tokens, whose, tpm, whose))
        return tokens

    def reserve(self, tokens: float, *, model: Optional[str] = None,
                timeout: Optional[float] = None,
                max_pause: Optional[float] = None) -> Any:
        """``RateLimiter.reserve`` across every process of the namespace: one script takes the
        pause check, a lease (if concurrency is capped) and the bucket tokens at once.

        Returns a RedisReservation (or, while Redis is unreachable, a per-process Reservation).
        Raises what ``RateLimiter.reserve`` raises, and BackendUnavailableError with
        on_backend_error="raise".
        """
        tokens = self._validate(tokens, model)
        timeout = _optional_seconds("timeout", timeout)
        max_pause = _optional_seconds("max_pause", max_pause)
        keys = self.redis_keys(model)
        key_list = (keys["slots"], keys["pause_all"], keys["pause_model"], keys["rq"],
                    keys["tk"], keys["mrq"], keys["mtk"])
        buckets = self._bucket_args(model)
        lease_id = ("%s:%d:%d" % (_process_token, os.getpid(), next(self._ids))
                    if self.max_concurrent is not None else "")
        waited = paused = 0.0
        pause_rounds = 0
        while True:
            left = None if timeout is None else max(0.0, timeout - waited)
            ok, answer = self._call(_RESERVE, key_list, [
                self.max_concurrent or 0, self._lease_ms, lease_id, repr(tokens),
                -1 if left is None else repr(left)] + buckets, "reserving")
            if not ok:
                return self._reserve_local(tokens, model, left, max_pause, paused)
            kind, value = _text(answer[0]), float(answer[1])
            if kind == "ok":
                break
            if kind == "late":
                raise RateLimitTimeout("waiting %.3fs for the %s limit would exceed the timeout "
                                       "of %.3fs" % (value, _limit_name(_text(answer[2])),
                                                     timeout))
            if kind == "paused":
                pause_rounds += 1
                self._check_pause(model, value, timeout, max_pause, waited, paused, pause_rounds)
                self._sleep_for(value)
                waited += value
                paused += value
                continue
            # "busy": every slot is leased; the script said when the first lease would expire.
            nap = min(max(value, 0.001), SLOT_POLL_SECONDS) * (0.5 + random.random())
            if timeout is not None and waited + nap > timeout:
                raise RateLimitTimeout("no concurrency slot freed within the timeout of %.3fs "
                                       "(max_concurrent=%d across the namespace %r)"
                                       % (timeout, self.max_concurrent, self.namespace))
            self._sleep_for(nap)
            waited += nap
        reservation = RedisReservation(self, model, tokens, waited + value, lease_id)
        if lease_id:
            self._hold(lease_id)
        if value > 0.0:
            try:
                self._sleep_for(value)
                self._wait_after_buckets(model, timeout, max_pause, waited + value, paused)
            except BaseException:
                self._give_back(reservation)
                raise
        self._current.reservation = weakref.ref(reservation)
        return reservation

    def _wait_after_buckets(self, model: Optional[str], timeout: Optional[float],
                            max_pause: Optional[float], waited: float, paused: float) -> None:
        """A pause set by another process while this one slept must still be respected."""
        for rounds in range(1, _MAX_PAUSE_ROUNDS + 1):
            remaining = self.pause_remaining(model)
            if remaining <= 0.0:
                return
            self._check_pause(model, remaining, timeout, max_pause, waited, paused, rounds)
            self._sleep_for(remaining)
            waited += remaining
            paused += remaining

    def _check_pause(self, model: Optional[str], remaining: float, timeout: Optional[float],
                     max_pause: Optional[float], waited: float, paused: float,
                     rounds: int) -> None:
        why = None
        if max_pause is not None and remaining > max_pause - paused:
            why = "max_pause=%gs" % max_pause
        elif timeout is not None and remaining > timeout - waited:
            why = "timeout=%gs" % timeout
        elif rounds > _MAX_PAUSE_ROUNDS:
            why = "still paused after %d waits" % _MAX_PAUSE_ROUNDS
        if why is not None:
            what = "every model" if self._pause_target(model) == _EVERY_MODEL else \
                "model %r" % model
            raise RateLimitError("%s is paused by the server's rate limit for %.3fs more "
                                 "(namespace %r); not waiting (%s)"
                                 % (what, remaining, self.namespace, why),
                                 status_code=429, retry_after=remaining)

    def _reserve_local(self, tokens: float, model: Optional[str], timeout: Optional[float],
                       max_pause: Optional[float], paused: float) -> Any:
        """The per-process fallback; a request larger than its share waits for a full bucket."""
        cap = self._local.tpm
        own = self._local.model_limits.get(model, {}).get("tpm") if model is not None else None
        for limit in (cap, own):
            if limit is not None:
                tokens = min(tokens, limit)
        return self._local.reserve(tokens, model=model, timeout=timeout,
                                   max_pause=None if max_pause is None
                                   else max(0.0, max_pause - paused))

    def _give_back(self, reservation: RedisReservation) -> None:
        self._drop(reservation.lease_id)
        self.settle_remote(reservation.model, reservation.lease_id, -reservation.tokens, 1, None)

    # -- leases and settlement ---------------------------------------------------------------

    def _hold(self, lease_id: str) -> None:
        with self._leases_lock:
            self._leases[lease_id] = None
        _RENEWER.register(self)

    def _drop(self, lease_id: str) -> bool:
        with self._leases_lock:
            return self._leases.pop(lease_id, False) is None

    def settle_remote(self, model: Optional[str], lease_id: str, delta: float,
                      requests_back: int,
                      lower: Optional[Tuple[str, Optional[float], Optional[float]]]) -> None:
        """One script: free ``lease_id``, move ``delta`` TPM tokens, give back requests, lower
        levels to what the server said. Redis down: the lease expires by itself."""
        if lease_id and not self._drop(lease_id):
            lease_id = ""  # not ours (made before a fork, or already freed)
        if not (lease_id or delta or requests_back or lower):
            return
        keys = self.redis_keys(model)
        scope, low_rq, low_tk = lower if lower is not None else ("", None, None)
        ok, _ = self._call(_SETTLE, (keys["slots"], keys["rq"], keys["tk"], keys["mrq"],
                                     keys["mtk"]),
                           [lease_id, repr(delta), requests_back, scope,
                            "" if low_rq is None else repr(low_rq),
                            "" if low_tk is None else repr(low_tk)] + self._bucket_args(model),
                           "settling")
        if not ok and lower is not None:
            logger.debug("rate limit: remaining levels not shared while Redis is unreachable")

    def renew_leases(self) -> int:
        """Extend every live lease of this process in one round trip; returns how many."""
        with self._leases_lock:
            leases = list(self._leases)
        if not leases or not self._guard.up:
            return 0
        try:
            ok, renewed = rc.run_guarded(self._guard, lambda: _RENEW(
                self._client, (self._prefix + "slots",), [self._lease_ms] + leases),
                "renewing leases")
        except BackendUnavailableError:  # on_backend_error="raise": no caller to raise to
            return 0
        return int(renewed) if ok else 0

    @property
    def in_flight(self) -> int:
        """This process's reservations holding a concurrency slot (shared or fallback)."""
        with self._leases_lock:
            mine = len(self._leases)
        return mine + self._local.in_flight

    def slots_in_use(self) -> int:
        """Concurrency slots leased now by every process of the namespace (-1: Redis down)."""
        ok, count = self._call(_SLOTS_IN_USE, (self._prefix + "slots",), [], "counting slots")
        return int(count) if ok else -1

    def model_buckets(self, model: Optional[str]) -> Tuple[Any, Any]:
        """The per-process fallback's (requests, tokens) buckets for ``model``."""
        return self._local.model_buckets(model)

    def after_fork_in_child(self) -> None:
        """A forked child owns none of its parent's leases and needs its own locks."""
        self._leases_lock = threading.Lock()
        self._leases = {}
        self._current = threading.local()

    def close(self) -> None:
        """Stop the probe thread (the renewer stops when no limiter is left)."""
        self._guard.close()

    def __repr__(self) -> str:
        return ("RedisRateLimiter(%s, namespace=%r, rpm=%s, tpm=%s, max_concurrent=%s, "
                "lease_seconds=%g, on_backend_error=%r, expected_processes=%s, backend_up=%s)"
                % (self._where, self.namespace, _fmt(self.rpm), _fmt(self.tpm),
                   self.max_concurrent, self.lease_seconds, self.on_backend_error,
                   self.expected_processes, self._guard.up))


def _optional_seconds(name: str, value: Any) -> Optional[float]:
    value = checks.number(name, value, allow_none=True, allow_inf=True)
    if value is None or value == float("inf"):
        return None
    return max(0.0, value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _limit_name(key: str) -> str:
    tail = key.rsplit("}:", 1)[-1]
    kind, _, model = tail.partition(":")
    name = "rpm" if kind == "rq" else "tpm"
    return "%r %s" % (model, name) if model else name


def _fmt(value: Optional[float]) -> str:
    return "None" if value is None else "%g" % value
