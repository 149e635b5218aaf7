"""Per-model health for the router: a circuit breaker with cooldowns, and recent latencies.

A model that fails ``CooldownPolicy.failures`` times within ``window`` seconds is skipped by
every thread for ``cooldown`` seconds; then one probe request is let through (half-open):
success closes the circuit, failure opens it again. State is computed lazily from the injected
clock, under one lock held only for bookkeeping, never across a request.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Deque, Dict, Iterable, Mapping, Optional, Tuple

from ._stats import percentile
from . import _checks as checks

__all__ = ["CooldownPolicy", "ModelHealth", "LatencyStats", "HealthBoard",
           "DEFAULT_LATENCY_WINDOW"]

log = logging.getLogger(__name__)

#: Latencies kept per model: enough for a stable p99 (2-3 samples above it), small to sort.
DEFAULT_LATENCY_WINDOW = 256


@dataclass(frozen=True)
class CooldownPolicy:
    """Skip a model for ``cooldown`` s after ``failures`` failures within ``window`` s."""

    failures: int = 3
    window: float = 60.0
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        checks.number("failures", self.failures, minimum=1, integer=True)
        for name in ("window", "cooldown"):
            checks.number(name, getattr(self, name), above=0)


@dataclass(frozen=True)
class ModelHealth:
    """A model's circuit: ``state`` is "ok", "cooling" (skipped until ``cooling_until``, a
    clock reading) or "probing" (cooldown over: the next request, or the one in flight, is the
    probe that decides); ``failures`` counts those inside the current window."""

    state: str
    failures: int
    cooling_until: Optional[float]
    last_error: Optional[str]


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles (nearest rank, ms) of a model's recent successful calls; ``errors`` is
    every failed call so far. Percentiles are ``None`` before the first success."""

    count: int
    p50_ms: Optional[float]
    p95_ms: Optional[float]
    p99_ms: Optional[float]
    errors: int


class _State:
    """Mutable per-model record; only touched with ``HealthBoard._lock`` held."""

    __slots__ = ("failures", "cooling_until", "probe_in_flight", "last_error", "latencies",
                 "errors")

    def __init__(self, latency_window: int) -> None:
        self.failures: Deque[float] = collections.deque()
        self.cooling_until: Optional[float] = None  # None: the circuit is closed
        self.probe_in_flight = False
        self.last_error: Optional[str] = None
        self.latencies: Deque[float] = collections.deque(maxlen=latency_window)
        self.errors = 0


class HealthBoard:
    """Circuit breakers and latency windows for many models, shared by every thread."""

    def __new__(cls, *args: Any, backend: Any = None, **kwargs: Any) -> "HealthBoard":
        """With ``backend`` (a Redis URL or client) the board is the fleet-wide
        ``backends.redis_health.RedisHealthBoard`` (``namespace=``, ``refresh=``)."""
        if backend is not None and cls is HealthBoard:
            from .backends.redis_health import RedisHealthBoard
            return super().__new__(RedisHealthBoard)
        return super().__new__(cls)

    def __init__(self, policy: Optional[CooldownPolicy] = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 latency_window: int = DEFAULT_LATENCY_WINDOW, backend: None = None) -> None:
        if backend is not None:  # __new__ picked this class: a subclass not made for a backend
            raise ValueError("backend= is not supported by %s" % type(self).__name__)
        checks.number("latency_window", latency_window, minimum=1, integer=True)
        if policy is not None and not isinstance(policy, CooldownPolicy):
            raise ValueError("policy must be a CooldownPolicy or None, got %r" % (policy,))
        checks.callable_("clock", clock)
        self.policy = policy if policy is not None else CooldownPolicy()
        self._clock = clock
        self._latency_window = latency_window
        # Guards _models and every _State in it.
        self._lock = threading.Lock()
        self._models: Dict[str, _State] = {}

    def _state(self, model: str) -> _State:
        state = self._models.get(model)
        if state is None:
            state = self._models[model] = _State(self._latency_window)
        return state

    @staticmethod
    def _refusal(state: _State, now: float) -> Optional[str]:
        if state.cooling_until is None:
            return None
        if now < state.cooling_until:
            return "cooling down for %.1fs more (last error: %s)" % (
                state.cooling_until - now, state.last_error)
        if state.probe_in_flight:
            return "cooldown over; another request is probing it"
        return None

    # Admission ---------------------------------------------------------------------------------
    def check(self, model: str) -> Optional[str]:
        """Why ``model`` must be skipped now, or ``None``; claims nothing."""
        with self._lock:
            state = self._models.get(model)
            return None if state is None else self._refusal(state, self._clock())

    def acquire(self, model: str) -> Tuple[Optional[str], bool]:
        """Right before sending: ``(None, is_probe)`` when allowed, else ``(reason, False)``.

        After a cooldown the first caller becomes the probe; the others are refused until it
        reports through ``succeeded``, ``failed`` or ``finished``.
        """
        with self._lock:
            state = self._models.get(model)
            if state is None:
                return None, False
            reason = self._refusal(state, self._clock())
            if reason is not None:
                return reason, False
            if state.cooling_until is None:
                return None, False
            state.probe_in_flight = True
            return None, True

    # Outcomes ----------------------------------------------------------------------------------
    def succeeded(self, model: str, latency_ms: float, probe: bool = False) -> None:
        """A successful call: record its latency; a probe (or any success after the
        cooldown) closes the circuit."""
        with self._lock:
            state = self._state(model)
            state.latencies.append(float(latency_ms))
            now = self._clock()
            if state.cooling_until is not None and (probe or now >= state.cooling_until):
                state.cooling_until = None
                state.probe_in_flight = False
                state.failures.clear()
                reopened = True
            else:
                reopened = False
        if reopened:
            log.info("model %s answered again: its circuit is closed", model)

    def failed(self, model: str, error: str, probe: bool = False) -> None:
        """A failure that says the model is unwell (5xx, timeout, 404, 429 past the cap)."""
        policy = self.policy
        with self._lock:
            state = self._state(model)
            now = self._clock()
            state.errors += 1
            state.last_error = error
            engaged = False
            if probe:
                state.probe_in_flight = False
                state.cooling_until = now + policy.cooldown
                state.failures.clear()
                engaged = True
            elif state.cooling_until is None:
                failures = state.failures
                failures.append(now)
                while failures and failures[0] <= now - policy.window:
                    failures.popleft()
                if len(failures) >= policy.failures:
                    state.cooling_until = now + policy.cooldown
                    failures.clear()
                    engaged = True
            # else: a call sent before the circuit opened; the cooldown already counts it.
        if engaged:
            log.warning("model %s cooling down for %gs after %s (last error: %s)", model,
                        policy.cooldown, "a failed probe" if probe else "%d failures in %gs"
                        % (policy.failures, policy.window), error)

    def missing(self, model: str, error: str, probe: bool = False) -> None:
        """The gateway does not know ``model`` (ModelNotFoundError): skip it for a cooldown at
        once; asking again within seconds would only fail the same way."""
        policy = self.policy
        with self._lock:
            state = self._state(model)
            state.errors += 1
            state.last_error = error
            state.probe_in_flight = False
            state.cooling_until = self._clock() + policy.cooldown
            state.failures.clear()
        log.warning("model %s is unknown to the gateway: skipping it for %gs (%s)", model,
                    policy.cooldown, error)

    def finished(self, model: str, probe: bool = False, error: Optional[str] = None) -> None:
        """A call that says nothing about health (400, 401, a budget refusal): give back the
        probe slot; ``error`` still counts in the model's stats."""
        with self._lock:
            state = self._state(model)
            if probe:
                state.probe_in_flight = False
            if error is not None:
                state.errors += 1

    # Observation -------------------------------------------------------------------------------
    def p50s(self, models: Iterable[str]) -> Dict[str, Optional[float]]:
        """The observed median latency (ms) of each model, ``None`` without data."""
        with self._lock:
            samples = {m: list(self._models[m].latencies) if m in self._models else []
                       for m in models}
        return {m: percentile(sorted(values), 50) for m, values in samples.items()}

    def health(self, models: Iterable[str] = ()) -> Mapping[str, ModelHealth]:
        """A read-only snapshot for ``models`` plus every model seen so far."""
        with self._lock:
            now = self._clock()
            window_start = now - self.policy.window
            report = {}
            for model in list(dict.fromkeys(models)) + [m for m in self._models]:
                state = self._models.get(model)
                if state is None:
                    report[model] = ModelHealth("ok", 0, None, None)
                    continue
                if state.cooling_until is None:
                    label = "ok"
                elif now < state.cooling_until:
                    label = "cooling"
                else:
                    label = "probing"
                recent = sum(1 for t in state.failures if t > window_start)
                report[model] = ModelHealth(label, recent, state.cooling_until, state.last_error)
        return MappingProxyType(report)

    def stats(self, models: Iterable[str] = ()) -> Mapping[str, LatencyStats]:
        """Latency percentiles for ``models`` plus every model seen so far (read-only)."""
        with self._lock:
            raw = {m: ([], 0) for m in models}
            for model, state in self._models.items():
                raw[model] = (list(state.latencies), state.errors)
        report = {}
        for model, (values, errors) in raw.items():
            values.sort()
            report[model] = LatencyStats(len(values), percentile(values, 50),
                                         percentile(values, 95), percentile(values, 99),
                                         errors)
        return MappingProxyType(report)

    def __repr__(self) -> str:
        return "HealthBoard(%r, models=%d)" % (self.policy, len(self._models))
