"""RetryPolicy: when to retry a failed call and how long to wait, as an immutable value.

One policy is shared by every thread; the per-call state (attempt number, time left) lives in
the client's loop. Every method is pure, so the policy is tested as a table.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple, Callable, FrozenSet, Mapping, Optional

from ._headers import parse_retry_after

__all__ = ["RetryPolicy", "Backoff"]

#: Statuses worth another try: timeouts, conflicts, rate limits and server-side failures.
DEFAULT_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
#: Statuses that fail the same way on every try; ``x-should-retry: true`` never overrides them.
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 422})
# 2**62 already exceeds any sane delay; capping the exponent keeps the float finite.
_MAX_EXPONENT = 62


class Backoff(NamedTuple):
    """One decided wait: how long, and whether the server asked for it."""

    seconds: float
    server_asked: bool


@dataclass(frozen=True)
class RetryPolicy:
    """How a call retries: bounded attempts, exponential backoff with jitter, server hints.

    ``deadline`` (seconds) bounds the whole call, limiter waits and sleeps included.
    ``max_retry_after`` bounds a wait the server asks for: a longer one is not slept; the call
    raises the status's error with ``retry_after`` set so a web view never hangs.
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    #: Each backoff is scaled by a random factor in [1 - jitter, 1 + jitter] to spread retries.
    jitter: float = 0.25
    retry_statuses: FrozenSet[int] = field(default=DEFAULT_RETRY_STATUSES)
    max_retry_after: float = 60.0
    deadline: Optional[float] = None
    #: Retry a connection that never reached the server (refused, DNS, connect timeout):
    #: always safe, nothing was sent.
    retry_connect_errors: Optional[bool] = None
    #: Retry a failure after the request was sent (read timeout, reset mid-answer, a 2xx body
    #: cut, stalled or undecodable): the call may have been billed; the Idempotency-Key, sent
    #: unchanged on every try, is what lets the gateway answer a repeat without billing twice.
    retry_sent_errors: Optional[bool] = None
    #: Shorthand setting both switches above; giving it with either one is a ValueError.
    retry_connection_errors: Optional[bool] = None

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) \
                or self.max_retries < 0:
            raise ValueError("max_retries must be an int >= 0, got %r" % (self.max_retries,))
        for name in ("initial_delay", "max_delay", "max_retry_after", "multiplier", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value < float("inf"):
                raise ValueError("%s must be a finite number >= 0, got %r" % (name, value))
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1, got %r" % (self.multiplier,))
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1, got %r" % (self.jitter,))
        if self.deadline is not None and (
                isinstance(self.deadline, bool) or not isinstance(self.deadline, (int, float))
                or not 0 < self.deadline < float("inf")):
            raise ValueError("deadline must be a positive number of seconds or None, got %r"
                             % (self.deadline,))
        for name in ("retry_connect_errors", "retry_sent_errors", "retry_connection_errors"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError("%s must be True, False or None, got %r" % (name, value))
        both = self.retry_connection_errors
        if both is not None:
            if self.retry_connect_errors is not None or self.retry_sent_errors is not None:
                raise ValueError("retry_connection_errors is a shorthand for retry_connect_errors"
                                 " and retry_sent_errors: give it or them, not both")
            # Stored as the two switches, so dataclasses.replace(policy, one=...) keeps working.
            object.__setattr__(self, "retry_connect_errors", both)
            object.__setattr__(self, "retry_sent_errors", both)
            object.__setattr__(self, "retry_connection_errors", None)
        for name in ("retry_connect_errors", "retry_sent_errors"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, True)
        statuses = self.retry_statuses
        if isinstance(statuses, (str, bytes)) or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in statuses):
            raise ValueError("retry_statuses must be a set of ints, got %r" % (statuses,))
        object.__setattr__(self, "retry_statuses", frozenset(statuses))

    def retries_transport_error(self, request_sent: bool) -> bool:
        """Whether a transport failure may be retried: the switch for where it happened."""
        return bool(self.retry_sent_errors if request_sent else self.retry_connect_errors)

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry ``retry_number`` (1 for the first): 0.5, 1, 2 … s ± jitter."""
        exponent = min(max(retry_number - 1, 0), _MAX_EXPONENT)
        base = min(self.initial_delay * self.multiplier ** exponent, self.max_delay)
        if self.jitter:
            base *= 1 - self.jitter + 2 * self.jitter * rand()
        return min(base, self.max_delay)

    def is_retryable_status(self, status: int, headers: Optional[Mapping[str, str]] = None
                            ) -> bool:
        """Whether a status may be retried; ``x-should-retry`` decides, except for 4xx finals."""
        if status in NEVER_RETRY_STATUSES:
            return False
        hint = _header(headers, "x-should-retry")
        if hint is not None:
            hint = hint.strip().lower()
            if hint == "false":
                return False
            if hint == "true":
                return True
        return status in self.retry_statuses

    def wait(self, retry_number: int, headers: Optional[Mapping[str, str]] = None, *,
             now: Optional[float] = None,
             rand: Callable[[], float] = random.random) -> Backoff:
        """The wait before the next try: what the server asked for, else the backoff."""
        asked = parse_retry_after(headers, now=now) if headers else None
        if asked is not None:
            return Backoff(asked, True)
        return Backoff(self.backoff(retry_number, rand), False)

    def __repr__(self) -> str:
        return ("RetryPolicy(max_retries=%d, initial_delay=%g, max_delay=%g, max_retry_after=%g,"
                " deadline=%s, retry_connect_errors=%s, retry_sent_errors=%s)"
                % (self.max_retries, self.initial_delay, self.max_delay, self.max_retry_after,
                   self.deadline, self.retry_connect_errors, self.retry_sent_errors))


def _header(headers: Optional[Mapping[str, str]], name: str) -> Optional[str]:
    if not headers:
        return None
    value = headers.get(name)
    if value is None and not hasattr(headers, "lower_items"):
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value
