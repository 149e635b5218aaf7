"""What a call returns: ``ChatResult`` with its ``Usage`` and ``ToolCall``s, parsed from JSON."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, dataclass, field
from collections.abc import Mapping  # isinstance checks: faster than typing's alias
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Tuple

from .errors import InvalidResponseError, ToolCallError, redact

if TYPE_CHECKING:  # money types in annotations; decimal itself loads with the first cost
    from decimal import Decimal

__all__ = ["Usage", "ToolCall", "ChatResult", "Attempt", "Deferred", "parse_usage",
           "parse_tool_calls", "parse_message", "parse_gateway_cost"]


class Attempt(NamedTuple):
    """One try of a call: its number (1 first), what came back, the wait slept after it, why.

    ``status`` is the HTTP status when one arrived, else ``None``; ``error`` the llmroute error
    type's name when the try failed; ``reason`` says in words what happened next.
    """

    number: int
    status: Optional[int]
    error: Optional[str]
    wait: float
    reason: str


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


class Deferred:
    """A field value computed on first read: ``compute(*args)`` (picklable when they are)."""

    __slots__ = ("compute", "args")

    def __init__(self, compute: Callable[..., Any], *args: Any) -> None:
        self.compute = compute
        self.args = args

    def __reduce__(self) -> Any:
        return (Deferred, (self.compute,) + self.args)


class _LazyField:
    """A frozen dataclass field that may be given a ``Deferred``: it is computed on first read
    and kept. ``ChatResult.rate_limit`` is one: most callers never read the rate-limit headers,
    so they are parsed only when someone does."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name
        self._slot = "_" + name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return None  # the field's default, as dataclasses reads it from the class
        value = obj.__dict__[self._slot]
        if type(value) is Deferred:
            # Two threads may both compute it: the same headers parse to equal values.
            value = value.compute(*value.args)
            obj.__dict__[self._slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        if self._slot in obj.__dict__:  # only __init__ sets it: the dataclass is frozen
            raise FrozenInstanceError("cannot assign to field %r" % (self._name,))
        obj.__dict__[self._slot] = value


@dataclass(frozen=True)
class ChatResult:
    """One completed chat call: the answer, what it cost and how long it took.

    ``rate_limit`` is the response's ``x-ratelimit-*`` headers as a ``RateLimitInfo`` (None when
    it had none), parsed the first time it is read.
    """

    content: Optional[str]
    model: str
    finish_reason: Optional[str]
    usage: Optional[Usage]
    cost_usd: Optional[Decimal]
    latency_ms: float
    attempts: int = 1
    request_id: Optional[str] = None
    tool_calls: Tuple[ToolCall, ...] = ()
    rate_limit: Any = _LazyField()  # type: ignore[assignment]
    cost_estimated: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: One ``Attempt`` per try, the successful one last.
    attempt_log: Tuple[Attempt, ...] = field(default=(), repr=False)
    #: What the gateway says the call cost (``x-litellm-response-cost``), else ``None``.
    gateway_cost_usd: Optional[Decimal] = None


# Token counts beyond this are garbage, not usage (and would overflow a float's exact range).
_MAX_COUNT = 2 ** 53


def _int(value: Any) -> Optional[int]:
    """A token count sent as 1000, 1000.0 or "1000"; anything else (bool, 1.5, -1) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii() or len(text) > 16:
            return None
        number = int(text)
    else:
        return None
    return number if 0 <= number <= _MAX_COUNT else None


def parse_usage(data: Any) -> Optional[Usage]:
    """The ``usage`` object of a completion, or ``None`` when it is missing or unreadable.

    Prompt and completion counts must both be there as exact integers (``1000``, ``1000.0``
    or ``"1000"``); otherwise the usage is unknown and the caller estimates it.
    """
    if not isinstance(data, Mapping):
        return None
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
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
    """Decode a message's ``tool_calls``; arguments that are not JSON raise ``ToolCallError``.

    ``InvalidResponseError`` when the list is not a list of call objects (a ``null`` item).
    """
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InvalidResponseError("tool_calls is a %s, not a list" % type(items).__name__)
    calls = []
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidResponseError("tool_calls holds a %s, not a call object"
                                       % type(item).__name__)
        function = item.get("function") or {}
        if not isinstance(function, Mapping):
            raise InvalidResponseError("a tool call's function is a %s, not an object"
                                       % type(function).__name__)
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


def parse_content(value: Any, request_id: Optional[str] = None) -> Optional[str]:
    """A message's ``content``: a string, ``None``, or a list of parts whose text is joined."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif not isinstance(part, Mapping):
                raise InvalidResponseError("message content holds a %s, not a part object"
                                           % type(part).__name__, request_id=request_id)
        return "".join(texts)
    raise InvalidResponseError("message content is a %s, not text" % type(value).__name__,
                               request_id=request_id)


def parse_message(choice: Mapping[str, Any], request_id: Optional[str] = None
                  ) -> Tuple[Optional[str], Any, Optional[str]]:
    """``(content, raw tool_calls, finish_reason)`` of a choice; ``InvalidResponseError`` if off."""
    message = choice.get("message")
    if message is None:
        message = {}
    if not isinstance(message, Mapping):
        raise InvalidResponseError("choice's message is a %s, not an object"
                                   % type(message).__name__, request_id=request_id)
    finish = choice.get("finish_reason")
    return (parse_content(message.get("content"), request_id), message.get("tool_calls"),
            finish if isinstance(finish, str) else None)


def parse_gateway_cost(headers: Any) -> Optional[Decimal]:
    """The gateway's own cost of the call (``x-litellm-response-cost``), or ``None``. Total."""
    try:
        value = headers.get("x-litellm-response-cost") if headers is not None else None
        if not isinstance(value, str) or len(value) > 64:
            return None
        from decimal import Decimal

        cost = Decimal(value.strip())
    except (ArithmeticError, ValueError, TypeError, AttributeError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None
