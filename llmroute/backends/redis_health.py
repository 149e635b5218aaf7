"""RedisHealthBoard: the router's circuit breakers shared by every process of a namespace.

``HealthBoard(..., backend=...)`` (``Router(health_backend=...)``) builds one. Failures are
counted fleet-wide; once a model has ``failures`` of them within ``window`` seconds, every
process skips it for ``cooldown`` seconds, then exactly one process (the one that claims the
probe on Redis) sends the request that decides. Circuit states live in one Redis hash per
namespace, which each process reads at most once every ``refresh`` seconds, so a healthy call
costs no round trip; failures and probes write through at once. Latencies stay per process.
Redis unreachable: each process keeps its own circuits until it answers again.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .. import _checks as checks
from ..health import DEFAULT_LATENCY_WINDOW, CooldownPolicy, HealthBoard, ModelHealth
from . import redis_client as rc

__all__ = ["RedisHealthBoard", "DEFAULT_REFRESH_SECONDS", "PROBE_CLAIM_SECONDS"]

logger = logging.getLogger(__name__)

#: How stale a process's copy of the shared circuits may be: a model another process just
#: opened is skipped here within this long.
DEFAULT_REFRESH_SECONDS = 1.0
#: A probe claimed by a process that then died stops blocking the others after this long.
PROBE_CLAIM_SECONDS = 120.0
_ERROR_CHARS = 200

# One hash per namespace, KEYS[1], fields per model: M (cooling until, server seconds),
# M|probe (the claiming process), M|probe_until, M|err; KEYS[2]: the model's failure times.
_HEALTH_LUA = rc.LUA_PRELUDE + r"""
local function touch(ttl_ms) redis.call('PEXPIRE', KEYS[1], ttl_ms) end
"""

# ARGV: model, failures, window s, cooldown s, probe (0/1), error, failure id, ttl ms
_FAIL = rc.Script("health_fail", _HEALTH_LUA + r"""
local m, failures, window, cooldown = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local now = now_s()
redis.call('HSET', KEYS[1], m .. '|err', ARGV[6])
local ends = tonumber(redis.call('HGET', KEYS[1], m))
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], m, num(now + cooldown))
  redis.call('HDEL', KEYS[1], m .. '|probe', m .. '|probe_until')
  redis.call('DEL', KEYS[2])
  touch(tonumber(ARGV[8]))
  return {'opened', num(cooldown)}
end
if ends ~= nil then
  touch(tonumber(ARGV[8]))
  return {'cooling', num(math.max(0, ends - now))}
end
redis.call('ZADD', KEYS[2], num(now), ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', num(now - window))
if redis.call('ZCARD', KEYS[2]) >= failures then
  redis.call('HSET', KEYS[1], m, num(now + cooldown))
  redis.call('DEL', KEYS[2])
  touch(tonumber(ARGV[8]))
  return {'opened', num(cooldown)}
end
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
touch(tonumber(ARGV[8]))
return {'counted', '0'}
""")

# ARGV: model, claimer, claim s. -> closed | cooling s | busy | probe
_CLAIM = rc.Script("health_claim", _HEALTH_LUA + r"""
local m = ARGV[1]
local now = now_s()
local ends = tonumber(redis.call('HGET', KEYS[1], m))
if ends == nil then return {'closed', '0'} end
if now < ends then return {'cooling', num(ends - now)} end
local claimed = tonumber(redis.call('HGET', KEYS[1], m .. '|probe_until') or '0')
if claimed > now then return {'busy', '0'} end
redis.call('HSET', KEYS[1], m .. '|probe', ARGV[2], m .. '|probe_until',
           num(now + tonumber(ARGV[3])))
return {'probe', '0'}
""")

# ARGV: model, claimer, close (1: a success closes the circuit; 0: only give the probe back)
_SETTLE = rc.Script("health_settle", _HEALTH_LUA + r"""
local m = ARGV[1]
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[1], m, m .. '|probe', m .. '|probe_until', m .. '|err')
  redis.call('DEL', KEYS[2])
elseif redis.call('HGET', KEYS[1], m .. '|probe') == ARGV[2] then
  redis.call('HDEL', KEYS[1], m .. '|probe', m .. '|probe_until')
end
return 1
""")

# -> {model, seconds left (<= 0: cooldown over), last error, ...} for every open circuit
_OPEN = rc.Script("health_open", _HEALTH_LUA + r"""
local now = now_s()
local fields = redis.call('HGETALL', KEYS[1])
local values, out = {}, {}
for i = 1, #fields, 2 do values[fields[i]] = fields[i + 1] end
for field, value in pairs(values) do
  if not string.find(field, '|', 1, true) then
    out[#out + 1] = field
    out[#out + 1] = num(tonumber(value) - now)
    out[#out + 1] = values[field .. '|err'] or ''
  end
end
return out
""")

SCRIPTS = (_FAIL, _CLAIM, _SETTLE, _OPEN)


class RedisHealthBoard(HealthBoard):
    """A ``HealthBoard`` whose circuits are shared on Redis (latency windows stay local)."""

    def __init__(self, policy: Optional[CooldownPolicy] = None, *, backend: Any,
                 namespace: str = "default", refresh: float = DEFAULT_REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 latency_window: int = DEFAULT_LATENCY_WINDOW) -> None:
        super().__init__(policy, clock=clock, latency_window=latency_window)
        self.namespace = rc.check_name("namespace", namespace)
        self.refresh = checks.number("refresh", refresh, minimum=0)
        self._now = clock
        self._client = rc.connect(backend)
        self._guard = rc.Guard(self._client, what="HealthBoard(namespace=%r)" % namespace)
        self._prefix = rc.key_prefix(self.namespace, "health")
        self._claimer = "%s:%d" % (uuid.uuid4().hex[:12], os.getpid())
        p = self.policy
        self._ttl_ms = int((p.cooldown + p.window + PROBE_CLAIM_SECONDS) * 2000)
        # Guards _open (model -> (local clock reading the cooldown ends, last error)) and
        # _read_at (when _open was last read from Redis; None: never).
        self._open_lock = threading.Lock()
        self._open: Dict[str, Tuple[float, str]] = {}
        self._read_at: Optional[float] = None
        rc.on_fork(self)

    def after_fork_in_child(self) -> None:
        """A forked child gets its own claimer id and a lock no parent thread holds."""
        self._open_lock = threading.Lock()
        self._claimer = "%s:%d" % (uuid.uuid4().hex[:12], os.getpid())

    def redis_keys(self, model: str) -> List[str]:
        """The circuits hash and ``model``'s failure times (one hash tag)."""
        return [self._prefix + "circuits", self._prefix + "failures:" + model]

    def _run(self, script: rc.Script, model: str, args: List[Any], doing: str
             ) -> Tuple[bool, Any]:
        if not self._guard.up:
            return False, None
        return rc.run_guarded(self._guard, lambda: script(
            self._client, self.redis_keys(model), [model] + args), doing)

    def _remember(self, model: str, seconds_left: float, error: Optional[str] = None) -> None:
        with self._open_lock:
            old = self._open.get(model, (0.0, ""))[1]
            self._open[model] = (self._now() + seconds_left, error if error is not None else old)

    def _forget(self, model: str) -> None:
        with self._open_lock:
            self._open.pop(model, None)

    def _shared(self, model: str, force: bool = False) -> Optional[Tuple[float, str]]:
        """``model``'s open circuit as this process last read it (re-read when stale)."""
        now = self._now()
        with self._open_lock:
            stale = force or self._read_at is None or now - self._read_at >= self.refresh
        if stale:
            ok, answer = self._run(_OPEN, model, [], "reading circuits")
            if ok:
                fresh = {}
                for i in range(0, len(answer), 3):
                    name = _text(answer[i])
                    fresh[name] = (now + float(answer[i + 1]), _text(answer[i + 2]))
                with self._open_lock:
                    self._open = fresh
                    self._read_at = now
        with self._open_lock:
            return self._open.get(model)

    # Admission ---------------------------------------------------------------------------------
    def check(self, model: str) -> Optional[str]:
        """Why ``model`` must be skipped now (by this process's latest reading), or ``None``."""
        shared = self._shared(model)
        if shared is not None and self._now() < shared[0]:
            return "cooling down for %.1fs more, for every process (last error: %s)" % (
                shared[0] - self._now(), shared[1])
        return super().check(model)

    def acquire(self, model: str) -> Tuple[Optional[str], bool]:
        """``HealthBoard.acquire`` for the fleet: after a cooldown one process claims the probe."""
        if not self._guard.up:
            return super().acquire(model)
        shared = self._shared(model)
        if shared is None:
            return super().acquire(model)
        until, error = shared
        if self._now() < until:
            return ("cooling down for %.1fs more, for every process (last error: %s)"
                    % (until - self._now(), error), False)
        ok, answer = self._run(_CLAIM, model, [self._claimer, PROBE_CLAIM_SECONDS],
                               "claiming a probe")
        if not ok:
            return super().acquire(model)
        kind = _text(answer[0])
        if kind == "closed":
            self._forget(model)
            return super().acquire(model)
        if kind == "cooling":
            self._remember(model, float(answer[1]))
            return self.check(model), False
        if kind == "busy":
            return "cooldown over; another process is probing it", False
        return None, True

    # Outcomes ----------------------------------------------------------------------------------
    def succeeded(self, model: str, latency_ms: float, probe: bool = False) -> None:
        """Record the latency; a probe (or a success past a known cooldown) closes the circuit
        for every process."""
        super().succeeded(model, latency_ms, probe)
        with self._open_lock:
            known = model in self._open
        if probe or known:
            ok, _ = self._run(_SETTLE, model, [self._claimer, 1], "closing a circuit")
            if ok:
                self._forget(model)
                if probe:
                    logger.info("model %s answered its probe: its circuit is closed for "
                                "namespace %r", model, self.namespace)

    def failed(self, model: str, error: str, probe: bool = False) -> None:
        """A failure that says the model is unwell, counted for the whole fleet."""
        policy = self.policy
        ok, answer = self._run(_FAIL, model, [
            policy.failures, policy.window, policy.cooldown, 1 if probe else 0,
            str(error)[:_ERROR_CHARS], uuid.uuid4().hex, self._ttl_ms], "counting a failure")
        if not ok:
            super().failed(model, error, probe)
            return
        super().finished(model, False, error)  # the local error count
        kind = _text(answer[0])
        if kind in ("opened", "cooling"):
            self._remember(model, float(answer[1]), str(error)[:_ERROR_CHARS])
        if kind == "opened":
            logger.warning("model %s cooling down for %gs for every process of namespace %r "
                           "after %s (last error: %s)", model, policy.cooldown, self.namespace,
                           "a failed probe" if probe else "%d failures in %gs"
                           % (policy.failures, policy.window), error)

    def finished(self, model: str, probe: bool = False, error: Optional[str] = None) -> None:
        """A call that says nothing about health: give the probe back to the fleet."""
        super().finished(model, probe, error)
        if probe:
            self._run(_SETTLE, model, [self._claimer, 0], "returning a probe")

    # Observation -------------------------------------------------------------------------------
    def health(self, models: Iterable[str] = ()) -> Mapping[str, ModelHealth]:
        """``HealthBoard.health`` with the fleet's open circuits read fresh from Redis."""
        report = dict(super().health(models))
        names = list(report)
        self._shared(names[0] if names else "", force=True)
        now = self._now()
        with self._open_lock:
            shared = dict(self._open)
        for model, (until, error) in shared.items():
            local = report.get(model, ModelHealth("ok", 0, None, None))
            state = "cooling" if now < until else "probing"
            report[model] = ModelHealth(state, local.failures, until, error or local.last_error)
        return MappingProxyType(report)

    @property
    def backend_up(self) -> bool:
        """False while Redis is unreachable (each process keeps its own circuits meanwhile)."""
        return self._guard.up

    def __repr__(self) -> str:
        return "RedisHealthBoard(%r, namespace=%r, refresh=%gs)" % (
            self.policy, self.namespace, self.refresh)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
