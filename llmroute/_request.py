"""What a request is made of, checked before anything is sent: options, headers, the body.

Every check raises ``ValueError`` naming the argument (booleans are never numbers), and never
quotes a header value: it may be a credential.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence  # faster isinstance than typing's
from typing import Any, Dict, Optional, Tuple

__all__ = ["check_deadline", "check_timeout", "check_headers", "wire_safe", "build_payload",
           "encode_payload"]


# Arguments -----------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_deadline(deadline: Any) -> Optional[float]:
    """``deadline`` as positive finite seconds, ``None`` kept; ``ValueError`` naming it."""
    if deadline is None:
        return None
    if not _is_number(deadline) or not 0 < deadline < math.inf:
        raise ValueError("deadline must be a positive number of seconds, got %r" % (deadline,))
    return float(deadline)


def check_timeout(timeout: Any) -> Tuple[float, float]:
    """A finite (connect, read) pair; ``None`` is refused: a web view must never wait forever."""
    if timeout is None:
        raise ValueError("timeout must be a number or a (connect, read) pair, not None: "
                         "an unbounded wait can hang a web worker")
    pair = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(pair) != 2:
        raise ValueError("timeout must be a number or a (connect, read) pair, got %r" % (timeout,))
    for value in pair:
        if not _is_number(value) or not 0 < value < math.inf:
            raise ValueError("timeout values must be positive finite seconds, got %r"
                             % (timeout,))
    return float(pair[0]), float(pair[1])


def check_headers(headers: Any, argument: str) -> Dict[str, str]:
    """Header names and values as strings fit for the wire; ``ValueError`` naming the header.

    The value is never quoted in the message: it may be a credential.
    """
    if not isinstance(headers, Mapping):
        raise ValueError("%s must be a dict of header names to strings" % (argument,))
    checked = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not wire_safe(name) or ":" in name \
                or " " in name:
            raise ValueError("%s has an invalid header name %r" % (argument, name))
        if not isinstance(value, str):
            raise ValueError("%s[%r] must be a string, got %s"
                             % (argument, name, type(value).__name__))
        if not wire_safe(value):
            raise ValueError("%s[%r] holds a control or non-Latin-1 character "
                             "(value not shown)" % (argument, name))
        checked[name] = value
    return checked


def wire_safe(text: str) -> bool:
    """Latin-1 without control characters (a tab is allowed in values, as HTTP allows)."""
    return all(" " <= c <= "~" or c == "\t" or "\xa0" <= c <= "\xff" for c in text)


def build_payload(model: Any, messages: Any, params: Mapping[str, Any]) -> Dict[str, Any]:
    """The request body as a dict; ``ValueError`` for a bad model or messages."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string, got %r" % (model,))
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) \
            or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for message in messages:
        if not isinstance(message, Mapping) or "role" not in message:
            raise ValueError("each message must be a dict with a 'role', got %r"
                             % (type(message).__name__,))
    payload = {"model": model, "messages": list(messages)}
    payload.update(params)
    return payload


# What json.dumps(..., ensure_ascii=False, allow_nan=False, separators=(",", ":")) builds on
# every call, built once (an encoder keeps no state between encode calls).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The body as compact UTF-8 JSON; NaN, infinity or an unencodable value -> ValueError."""
    try:
        return _ENCODER.encode(payload).encode("utf-8")
    except (ValueError, TypeError, RecursionError, UnicodeError):
        pass  # find the argument to name, outside the except: no chained cause
    for name, value in payload.items():
        try:
            json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (ValueError, RecursionError, UnicodeError):
            problem = "holds NaN or infinity (not valid JSON) or text that is not UTF-8"
        except TypeError:
            problem = "holds a value JSON cannot encode"
        else:
            continue
        raise ValueError("%s %s" % ("messages" if name == "messages" else
                                    "parameter %r" % (name,), problem))
    raise ValueError("the request cannot be encoded as JSON")
