"""Redis plumbing shared by the Redis backends: clients, Lua scripts, key names, outages, forks.

``connect`` turns a URL or a client instance into a client (clients built from a URL get short
socket timeouts and no retries, so a dead Redis costs one call ~0.25 s). ``Script`` runs a Lua
script by ``EVALSHA`` and loads it again on ``NOSCRIPT``. ``Guard`` remembers that Redis is
down, warns once, probes it from one daemon thread and says when it is back. ``on_fork``
registers objects to refresh in a forked child. The ``redis`` package is imported only here,
and only when a backend is created.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import weakref
from typing import Any, Callable, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

from ..errors import BackendUnavailableError

__all__ = ["connect", "Script", "Guard", "key_prefix", "check_name", "backend_errors",
           "on_fork", "describe", "run_guarded", "LUA_PRELUDE", "CONNECT_TIMEOUT",
           "SOCKET_TIMEOUT", "PROBE_SECONDS", "ON_BACKEND_ERROR"]

logger = logging.getLogger(__name__)

#: Socket timeouts of the clients built from a URL: a dead Redis costs one call this long.
CONNECT_TIMEOUT = 0.25
SOCKET_TIMEOUT = 0.25
#: How often a Guard pings a Redis that stopped answering (and how soon it can return to it).
PROBE_SECONDS = 2.0
#: The choices of ``on_backend_error``.
ON_BACKEND_ERROR = ("local", "raise")
#: Every key starts with this, then ``{namespace/part}``: the hash tag that keeps one
#: script's keys in one Redis Cluster slot.
KEY_ROOT = "llmroute"
_SCHEMES = ("redis", "rediss", "unix")
_NAME = re.compile(r"^[^{}\s]{1,100}$")
#: The value of a ``password`` query parameter (in any case), masked by ``describe``.
_PASSWORD_PARAM = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


def check_name(what: str, value: Any) -> str:
    """A namespace or key name: 1-100 characters, no braces (they delimit hash tags) or spaces."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError("%s must be 1-100 characters without braces or spaces, got %r"
                         % (what, value))
    return value


def key_prefix(namespace: str, part: str) -> str:
    """``llmroute:{namespace/part}:``: every key of one script shares this hash tag."""
    return "%s:{%s/%s}:" % (KEY_ROOT, namespace, part)


def describe(backend: Any) -> str:
    """A backend for logs and reprs: a URL without its password, or the client's class name."""
    if isinstance(backend, str):
        text, parts = backend, urlsplit(backend)
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = "%s:%d" % (host, parts.port)
            user = parts.username or ""
            text = urlunsplit((parts.scheme, "%s:***@%s" % (user, host), parts.path, parts.query,
                               parts.fragment))
        # redis-py also takes ?password=...; edited as text so unix:///path keeps its slashes
        head, mark, query = text.partition("?")
        return head + mark + _PASSWORD_PARAM.sub(r"\1***", query)
    return type(backend).__name__


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise ImportError("a Redis backend needs the redis package: "
                          "pip install 'llmroute[redis]'") from None
    return redis


def backend_errors() -> Tuple[type, ...]:
    """The redis exceptions a Guard treats as a backend failure: Redis not answering, and any
    error reply (``ResponseError``: a WRONGTYPE value at one of our keys, a script error), so
    odd state at a key degrades like an outage instead of failing the call. NOSCRIPT never
    gets here: ``Script`` loads the script again."""
    exc = _redis_module().exceptions
    names = ("ConnectionError", "TimeoutError", "ReadOnlyError", "MasterDownError",
             "ClusterDownError", "TryAgainError", "OutOfMemoryError", "BusyLoadingError",
             "ResponseError")
    return tuple(getattr(exc, n) for n in names if hasattr(exc, n)) + (OSError,)


# Clients created here from a URL, reset in a forked child (a pool's sockets belong to the parent).
_OWNED_CLIENTS: "weakref.WeakSet[Any]" = weakref.WeakSet()
# Objects with an ``after_fork_in_child()`` method, called in a forked child.
_FORK_LISTENERS: "weakref.WeakSet[Any]" = weakref.WeakSet()
_fork_hook_lock = threading.Lock()  # guards _fork_hook_installed
_fork_hook_installed = False


def _after_fork_in_child() -> None:
    for client in list(_OWNED_CLIENTS):
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.reset()
    for listener in list(_FORK_LISTENERS):
        listener.after_fork_in_child()


def _install_fork_hook() -> None:
    global _fork_hook_installed
    with _fork_hook_lock:
        if not _fork_hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_installed = True


def on_fork(listener: Any) -> None:
    """Call ``listener.after_fork_in_child()`` in every child forked from now on."""
    _install_fork_hook()
    _FORK_LISTENERS.add(listener)


def connect(backend: Any, *, what: str = "backend") -> Any:
    """A Redis client for ``backend``: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
    client instance (``redis.Redis``, a Sentinel ``master_for`` client, ``RedisCluster``).

    Raises ValueError naming ``what`` for anything else, ImportError without ``redis``.
    """
    if isinstance(backend, str):
        scheme = backend.split("://", 1)[0].lower() if "://" in backend else ""
        if scheme not in _SCHEMES:
            raise ValueError("%s must be a redis://, rediss:// or unix:// URL or a Redis client, "
                             "got %r" % (what, describe(backend)))
        redis = _redis_module()
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        client = redis.Redis.from_url(
            backend, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 0))
        _OWNED_CLIENTS.add(client)
        _install_fork_hook()
        return client
    if isinstance(backend, (bytes, bool, int, float)) or backend is None or not all(
            callable(getattr(backend, m, None)) for m in ("evalsha", "script_load", "ping")):
        raise ValueError("%s must be a redis://, rediss:// or unix:// URL or a Redis client "
                         "(redis.Redis, Sentinel master, RedisCluster), got %s"
                         % (what, type(backend).__name__))
    return backend


class Script:
    """One Lua script run with EVALSHA; on NOSCRIPT (a restarted or flushed Redis) it is
    loaded again and run once more."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run on ``client``; redis exceptions propagate (the caller's Guard sorts them)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except _redis_module().exceptions.NoScriptError:
            logger.debug("redis: loading script %s", self.name)
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def __repr__(self) -> str:
        return "Script(%s, sha=%s)" % (self.name, self.sha[:10])


class Guard:
    """Whether one Redis is usable: after a failure, ``up`` is False until a probe (a PING every
    ``PROBE_SECONDS`` from one daemon thread) succeeds, so callers pay for one failed call only.

    ``on_error="raise"`` turns a failure into ``BackendUnavailableError`` instead.
    """

    def __init__(self, client: Any, *, what: str, on_error: str = "local",
                 probe_seconds: float = PROBE_SECONDS) -> None:
        if on_error not in ON_BACKEND_ERROR:
            raise ValueError("on_backend_error must be 'local' or 'raise', got %r" % (on_error,))
        self.client = client
        self.what = what
        self.on_error = on_error
        self.probe_seconds = probe_seconds
        self.errors = backend_errors()
        # Guards _up, _prober and outages.
        self._lock = threading.Lock()
        self._up = True
        self._prober: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.outages = 0
        on_fork(self)

    @property
    def up(self) -> bool:
        """False while Redis is known to be unreachable (a probe will say when it is back)."""
        return self._up

    def failed(self, err: BaseException, doing: str) -> None:
        """Redis failed while ``doing``: warn once per outage, start probing; or raise."""
        with self._lock:
            first = self._up
            self._up = False
            if first:
                self.outages += 1
                self._start_prober()
        if first:
            logger.warning("%s: Redis failed while %s (%s: %s); %s until it answers "
                           "again (probing every %gs)", self.what, doing, type(err).__name__, err,
                           "raising" if self.on_error == "raise" else "using per-process state",
                           self.probe_seconds)
        if self.on_error == "raise":
            raise BackendUnavailableError("%s: Redis failed while %s (%s)"
                                          % (self.what, doing, type(err).__name__)) from err

    def _start_prober(self) -> None:
        """Start the probe thread if none is alive (lock held)."""
        if self._prober is None or not self._prober.is_alive():
            self._prober = threading.Thread(target=self._probe, daemon=True,
                                            name="llmroute-redis-probe")
            self._prober.start()

    def _probe(self) -> None:
        while not self._stop.wait(self.probe_seconds):
            try:
                self.client.ping()
            except self.errors:
                continue
            except Exception:  # a probe must never die of an odd reply; keep trying
                logger.debug("%s: probe failed", self.what, exc_info=True)
                continue
            with self._lock:
                self._up = True
            logger.info("%s: Redis answers again; shared state resumes", self.what)
            return

    def close(self) -> None:
        """Stop probing (for tests and shutdown)."""
        self._stop.set()

    def after_fork_in_child(self) -> None:
        """A forked child has no probe thread: start its own if Redis was down."""
        self._lock = threading.Lock()
        self._prober = None
        if not self._up:
            self._start_prober()


def run_guarded(guard: Guard, call: Callable[[], Any], doing: str) -> Tuple[bool, Any]:
    """``(True, call())`` if Redis answered; ``(False, None)`` after a failure (warned once)."""
    try:
        return True, call()
    except guard.errors as err:
        guard.failed(err, doing)
        return False, None


#: Lua shared by the scripts: server time, exact float text, and the token-bucket arithmetic.
#: A full bucket has no key; a partial one expires when it would be full again.
LUA_PRELUDE = r"""
if redis.replicate_commands then redis.replicate_commands() end
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(x) return string.format('%.17g', x) end
local EPS = 1e-9
local function bucket_level(key, rate, cap, now)
  local v = redis.call('HMGET', key, 'l', 't')
  local level, stamp = tonumber(v[1]), tonumber(v[2])
  if level == nil or stamp == nil then return cap end
  if now > stamp then
    level = level + (now - stamp) * rate
    if level > cap then level = cap end
  end
  return level
end
local function bucket_store(key, level, rate, cap, now)
  if level >= cap then redis.call('DEL', key) return end
  redis.call('HSET', key, 'l', num(level), 't', num(now))
  redis.call('PEXPIRE', key, math.ceil((cap - level) / rate * 1000) + 1000)
end
local function bucket_wait(level, n, rate)
  local short = n - level
  if short > EPS then return short / rate end
  return 0
end
"""
