"""Total parsers for the rate-limit headers gateways send: Retry-After, durations, x-ratelimit-*.

Each parser returns seconds (or a RateLimitInfo) or ``None`` and never raises: a header is
advice from the server, and garbled advice is no advice. Headers may be any Mapping (a plain
dict, requests' CaseInsensitiveDict, urllib3's HTTPHeaderDict); names match case-insensitively.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ._lazy import LazyPattern

__all__ = ["RateLimitInfo", "parse_retry_after", "parse_duration", "parse_rate_limit_headers",
           "header_value", "MAX_WAIT_HINT_SECONDS", "PROVIDER_PREFIX", "NOT_PARSED",
           "parse_lowered_rate_limit"]

# A non-negative decimal: "2", "2.5", ".5". Signs, exponents, "inf" and "nan" are garbage here.
_NUMBER = LazyPattern(r"(?:\d+(?:\.\d*)?|\.\d+)")
# A negative whole number: an over-spent quota count.
_NEGATIVE_INT = LazyPattern(r"-\d{1,18}")
# One "<number><unit>" part of a Go-style duration, as OpenAI sends in x-ratelimit-reset-*.
_DURATION_PART = LazyPattern(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|\u00b5s|\u03bcs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3,
                 "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ns": 1e-9}
#: Longer header values are not durations or dates; refusing them bounds the parsing work.
_MAX_VALUE_CHARS = 64

_RATE_LIMIT_PREFIX = "x-ratelimit-"
#: LiteLLM forwards an upstream provider's headers under this prefix ("llm_provider-retry-after").
PROVIDER_PREFIX = "llm_provider-"
#: A wait hint beyond a day is garbage (a misread timestamp, a unit mix-up), not advice; no
#: shared pause is set longer than this either.
MAX_WAIT_HINT_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class RateLimitInfo:
    """What a response's ``x-ratelimit-*`` headers say; counts and seconds, ``None`` if absent."""

    limit_requests: Optional[int] = None
    limit_tokens: Optional[int] = None
    remaining_requests: Optional[int] = None
    remaining_tokens: Optional[int] = None
    reset_requests: Optional[float] = None
    reset_tokens: Optional[float] = None


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip()
    return text if 0 < len(text) <= _MAX_VALUE_CHARS else None


def _lowered(headers: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """The headers as a plain dict keyed by lower-case name (values stripped, junk dropped)."""
    items = getattr(headers, "items", None)
    if items is None:
        return {}
    try:
        pairs = list(items())
    except (TypeError, ValueError):
        return {}
    lowered = {}
    for pair in pairs:
        if isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str):
            text = _text(pair[1])
            if text is not None:
                lowered.setdefault(pair[0].lower(), text)
    return lowered


def header_value(headers: Optional[Mapping[str, Any]], name: str) -> Optional[str]:
    """The stripped value of header ``name`` in any Mapping, matched case-insensitively."""
    return _lowered(headers).get(name.lower())


def _non_negative(text: Optional[str]) -> Optional[float]:
    if text is None or not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _http_date(text: Optional[str]) -> Optional[float]:
    """An HTTP date as POSIX seconds (a date without a zone is taken as UTC), else None."""
    if text is None:
        return None
    try:
        when = parsedate_to_datetime(text)
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _posix(now: Union[float, datetime, None]) -> float:
    if isinstance(now, datetime):
        return (now if now.tzinfo else now.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(now, (int, float)) and math.isfinite(now):
        return float(now)
    return time.time()


#: Every header a gateway may say "wait" in, with the factor that turns its number into seconds.
#: LiteLLM sends a plain retry-after on its own limits and only llm_provider-retry-after(-ms) on
#: others (its per-deployment rpm check) and on the upstream answers it forwards.
_RETRY_AFTER_HEADERS = (("retry-after-ms", 1e-3), ("retry-after", 1.0),
                        (PROVIDER_PREFIX + "retry-after-ms", 1e-3),
                        (PROVIDER_PREFIX + "retry-after", 1.0))


def parse_retry_after(headers: Optional[Mapping[str, Any]], *,
                      now: Union[float, datetime, None] = None) -> Optional[float]:
    """Seconds the server asks us to wait, or None when it gives no usable wait.

    Reads ``retry-after-ms``, ``Retry-After`` (delta-seconds or an HTTP date) and LiteLLM's
    ``llm_provider-`` prefixed forms of both; when several are present the longest wait wins. A
    date is measured against the response's own ``Date`` header when it has one, so a skewed
    local clock does not matter; otherwise against ``now`` (POSIX seconds or a datetime;
    default: the current UTC time). A zero wait or a date already past is "no wait given"
    (None: the caller's normal backoff applies, never a back-to-back retry); a wait beyond
    MAX_WAIT_HINT_SECONDS, negative, infinite, NaN and unparseable values are garbage (None).
    """
    lowered = _lowered(headers)
    waits = []
    for name, unit in _RETRY_AFTER_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        seconds = _non_negative(value)
        if seconds is not None:
            seconds *= unit
        elif unit == 1.0:
            seconds = _seconds_until(value, lowered, now)
        if seconds is not None and 0.0 < seconds <= MAX_WAIT_HINT_SECONDS:
            waits.append(seconds)
    return max(waits) if waits else None


def _seconds_until(value: str, lowered: Dict[str, str],
                   now: Union[float, datetime, None]) -> Optional[float]:
    """Seconds from the response's Date (else ``now``) until the HTTP date ``value``, or None."""
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(lowered.get("date"))
    if reference is None:
        reference = _posix(now)
    return when - reference


def parse_duration(text: Any) -> Optional[float]:
    """Seconds in a duration such as ``"6ms"``, ``"1m30s"``, ``"2.5s"``, ``"1h"`` or a bare
    ``"20"`` / ``"0.5"`` (seconds); None for anything else (negative, empty, unknown unit)."""
    text = _text(text)
    if text is None:
        return None
    text = text.lower()
    bare = _non_negative(text)
    if bare is not None:
        return bare
    total, pos = 0.0, 0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            return None
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        pos = part.end()
    return total if math.isfinite(total) else None


def _count(text: Optional[str]) -> Optional[int]:
    """A count; a negative integer (LiteLLM sends ``remaining-requests: -1`` once over its
    limit) means nothing is left, so it reads as 0."""
    if text is not None and len(text) <= 15 and text.isdigit() and text.isascii():
        return int(text)  # the usual case, without a regular expression (exact as a float)
    if text is not None and _NEGATIVE_INT.fullmatch(text):
        return 0
    value = _non_negative(text)
    return None if value is None else int(value)


class _NotParsed:
    """The type of ``NOT_PARSED``."""

    def __repr__(self) -> str:
        return "NOT_PARSED"


#: Stands for "the x-ratelimit-* headers were not parsed yet" where ``None`` would mean "parsed:
#: there are none", so one parse of a response can be handed to everything that reads it.
NOT_PARSED: Any = _NotParsed()

#: The RateLimitInfo fields in order, with the header suffix each is read from.
_RATE_LIMIT_FIELDS = ("limit-requests", "limit-tokens", "remaining-requests", "remaining-tokens",
                      "reset-requests", "reset-tokens")
#: Fields 0-3 are counts (the smaller of two readings is the cautious one), 4-5 resets (the
#: longer one).
_FIRST_RESET = 4
#: Every header name read, lower-case -> (field index, 1 if ``llm_provider-`` prefixed else 0).
_RATE_LIMIT_NAMES = {prefix + _RATE_LIMIT_PREFIX + suffix: (index, prefixed)
                     for index, suffix in enumerate(_RATE_LIMIT_FIELDS)
                     for prefixed, prefix in enumerate(("", PROVIDER_PREFIX))}


def _rate_limit_values(headers: Optional[Mapping[str, Any]]) -> Dict[Tuple[int, int], str]:
    """The ``x-ratelimit-*`` headers alone, plain or ``llm_provider-`` prefixed, by (field
    index, prefixed); of two spellings of one name the first with a usable value wins."""
    items = getattr(headers, "items", None)
    if items is None:
        return {}
    try:
        pairs = list(items())
    except (TypeError, ValueError):
        return {}
    found: Dict[Tuple[int, int], str] = {}
    names = _RATE_LIMIT_NAMES
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            continue
        key = names.get(pair[0].lower())
        if key is not None and key not in found:
            text = _text(pair[1])
            if text is not None:
                found[key] = text
    return found


def parse_rate_limit_headers(headers: Optional[Mapping[str, Any]]) -> Optional[RateLimitInfo]:
    """The ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` headers as a RateLimitInfo,
    or None when the response carries none of them (or none that parses).

    Each is read plain and ``llm_provider-`` prefixed; when both parse, the more cautious one
    wins (the smaller count, the longer reset).
    """
    return _rate_limit_info(_rate_limit_values(headers))


def parse_lowered_rate_limit(lowered: Mapping[str, str]) -> Optional[RateLimitInfo]:
    """``parse_rate_limit_headers`` for a plain dict whose names are lower-case already (what
    the transport builds once per response): no case folding, no checks of the pairs."""
    names = _RATE_LIMIT_NAMES
    found: Dict[Tuple[int, int], str] = {}
    for name, value in lowered.items():
        key = names.get(name)
        if key is not None:
            text = _text(value)
            if text is not None:
                found[key] = text
    return _rate_limit_info(found)


def _rate_limit_info(found: Dict[Tuple[int, int], str]) -> Optional[RateLimitInfo]:
    if not found:
        return None
    values: list = [None] * len(_RATE_LIMIT_FIELDS)
    for (index, _), text in found.items():
        is_reset = index >= _FIRST_RESET
        value = _reset(text) if is_reset else _count(text)
        if value is None:
            continue
        old = values[index]
        if old is None:
            values[index] = value
        else:
            values[index] = max(old, value) if is_reset else min(old, value)
    if all(value is None for value in values):
        return None
    return RateLimitInfo(*values)


@functools.lru_cache(maxsize=256)
def _reset(text: Optional[str]) -> Optional[float]:
    # Cached: a gateway sends the same few resets ("6ms", "1s") again and again.
    seconds = parse_duration(text)
    return seconds if seconds is not None and seconds <= MAX_WAIT_HINT_SECONDS else None
