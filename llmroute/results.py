"""What a call returns: ``ChatResult`` with its ``Usage`` and ``ToolCall``s, parsed from JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Optional, Tuple

from .errors import InvalidResponseError, ToolCallError, redact

__all__ = ["Usage", "ToolCall", "ChatResult", "parse_usage", "parse_tool_calls"]


@dataclass(frozen=True)
class Usage:
    """Token counts as the API reported them (``cached``/``reasoning`` only when reported)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None

    def __add__(self, other: "Usage") -> "Usage":
        def both(a: Optional[int], b: Optional[int]) -> Optional[int]:
            return None if a is None and b is None else (a or 0) + (b or 0)
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens,
                     self.total_tokens + other.total_tokens,
                     both(self.cached_tokens, other.cached_tokens),
                     both(self.reasoning_tokens, other.reasoning_tokens))


@dataclass(frozen=True)
class ToolCall:
    """One function the model asked to call, with ``arguments`` decoded from JSON."""

    id: str
    name: str
    arguments: Any
    raw_arguments: str = field(default="", repr=False)


@dataclass(frozen=True)
class ChatResult:
    """One completed chat call: the answer, what it cost and how long it took."""

    content: Optional[str]
    model: str
    finish_reason: Optional[str]
    usage: Optional[Usage]
    cost_usd: Optional[Decimal]
    latency_ms: float
    attempts: int = 1
    request_id: Optional[str] = None
    tool_calls: Tuple[ToolCall, ...] = ()
    rate_limit: Any = None
    cost_estimated: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_usage(data: Any) -> Optional[Usage]:
    """The ``usage`` object of a completion, or ``None`` when the API sent none."""
    if not isinstance(data, Mapping):
        return None
    prompt = _int(data.get("prompt_tokens")) or 0
    completion = _int(data.get("completion_tokens")) or 0
    total = _int(data.get("total_tokens"))
    details = data.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else None
    if cached is None:  # Anthropic-style gateways
        cached = _int(data.get("cache_read_input_tokens"))
    out_details = data.get("completion_tokens_details")
    reasoning = (_int(out_details.get("reasoning_tokens"))
                 if isinstance(out_details, Mapping) else None)
    return Usage(prompt, completion, total if total is not None else prompt + completion,
                 cached, reasoning)


def parse_tool_calls(items: Any) -> Tuple[ToolCall, ...]:
    """Decode a message's ``tool_calls``; arguments that are not JSON raise ``ToolCallError``."""
    if not items:
        return ()
    calls = []
    for item in items:
        function = item.get("function") or {}
        raw = function.get("arguments")
        name = str(function.get("name", ""))
        call_id = str(item.get("id", ""))
        if isinstance(raw, (dict, list)):
            arguments: Any = raw
            raw = json.dumps(raw)
        else:
            raw = "" if raw is None else str(raw)
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except ValueError as err:
                raise ToolCallError("arguments of tool call %r (%s) are not valid JSON: %s"
                                    % (name, call_id, err), raw=raw, name=name,
                                    call_id=call_id) from None
        calls.append(ToolCall(call_id, name, arguments, raw))
    return tuple(calls)


def first_choice(data: Any, request_id: Optional[str], secrets: tuple = ()) -> Mapping[str, Any]:
    """The first choice of a completion body, or ``InvalidResponseError`` saying what is off."""
    if not isinstance(data, Mapping):
        raise InvalidResponseError("response is JSON but not an object", request_id=request_id)
    if "error" in data and data["error"]:
        error = data["error"]
        message = error.get("message") if isinstance(error, Mapping) else error
        raise InvalidResponseError(
            "response carries an error object: %s" % redact(str(message)[:200], secrets),
            request_id=request_id)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise InvalidResponseError("response has no choices", request_id=request_id)
    return choices[0]
