"""A 2xx answer made into a ``ChatResult``, with the limiter and the tracker squared.

One rule for ``chat`` and ``stream`` alike: usage the server reported is charged as it is;
usage it did not report (or sent in a form that is not an exact count) is estimated from the
prompt and the answer, the result says ``cost_estimated=True`` and the limiter is settled with
the estimate. A call is never recorded as free because its usage was missing.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence  # faster isinstance than typing's
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from ._headers import NOT_PARSED, parse_lowered_rate_limit
from .errors import InvalidResponseError, ToolCallError, redact
from .results import (ChatResult, Deferred, Usage, first_choice, parse_gateway_cost,
                      parse_message, parse_tool_calls, parse_usage)
from .tokens import estimate_tokens

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["finish_chat", "settle_usage", "request_id_of", "rate_limit_of"]


def request_id_of(headers: Mapping[str, str]) -> Optional[str]:
    return headers.get("x-request-id") or headers.get("request-id")


def rate_limit_of(exchange: Any) -> Any:
    """The result's ``rate_limit``: the limiter's parse of the headers when it made one, else a
    parse deferred to the first read (the headers are parsed once, or never)."""
    if exchange.rate_limit is not NOT_PARSED:
        return exchange.rate_limit
    return Deferred(parse_lowered_rate_limit, exchange.lowered_headers)


def settle_usage(*, model: str, messages: Sequence[Mapping[str, Any]], usage: Optional[Usage],
                 answer: str, tool_texts: Sequence[str], reservation: Any, catalog: Any,
                 tracker: Any, failed: bool) -> Tuple[Usage, Optional[Decimal], bool]:
    """Settle the limiter and the tracker; return ``(usage, cost, estimated)``.

    ``usage`` ``None`` is estimated from the prompt, the answer and the tool-call texts. A
    ``failed`` call is recorded as an error with the tracker; its tokens stay charged.
    """
    estimated = usage is None
    if usage is None:
        prompt = estimate_tokens(messages)
        completion = estimate_tokens(answer) + sum(estimate_tokens(t) for t in tool_texts)
        usage = Usage(prompt, completion, prompt + completion)
    if reservation is not None:
        reservation.settle(usage.total_tokens)
    cost = catalog.spec(model).cost(usage.prompt_tokens, usage.completion_tokens,
                                    usage.cached_tokens or 0)
    if tracker is not None:
        if failed:
            tracker.add_error(model)
        else:
            tracker.add(model, prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens, cost_usd=cost)
    return usage, cost, estimated


def _invalid(message: str, exchange: Any, request_id: Optional[str], excerpt: str = ""
             ) -> InvalidResponseError:
    return InvalidResponseError(message, status_code=exchange.status, request_id=request_id,
                                body=excerpt, attempt_log=exchange.attempt_log)


def finish_chat(exchange: Any, model: str, messages: Sequence[Mapping[str, Any]], *,
                catalog: Any, tracker: Any, clock: Callable[[], float],
                secrets: Tuple[str, ...]) -> ChatResult:
    """Parse a whole 2xx body into a ``ChatResult``; settle the limiter and the tracker.

    Raises ``InvalidResponseError`` for a complete body of the wrong shape (counted as an error
    by the tracker, not retried) and ``ToolCallError`` for tool arguments that are not JSON
    (the call was billed: its result is on the error).
    """
    headers = exchange.lowered_headers  # lower-case names: plain dict lookups
    request_id = request_id_of(headers)
    reservation = exchange.reservation
    body = exchange.body or b""
    problem: Optional[InvalidResponseError] = None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        excerpt = redact(body[:200].decode("utf-8", "replace"), secrets)
        problem = _invalid("model %s answered HTTP %d with a body that is not JSON: %r"
                           % (model, exchange.status, excerpt), exchange, request_id, excerpt)
    if problem is None:
        try:
            choice = first_choice(data, request_id, secrets)
            content, raw_calls, finish_reason = parse_message(choice, request_id)
        except InvalidResponseError as err:
            problem = _invalid("model %s answered HTTP %d: %s" % (model, exchange.status, err),
                               exchange, request_id)
    if problem is not None:
        if reservation is not None:
            reservation.refund()
        if tracker is not None:
            tracker.add_error(model)
        raise problem
    tool_error: Optional[BaseException] = None
    tool_calls: Tuple[Any, ...] = ()
    try:
        tool_calls = parse_tool_calls(raw_calls)
    except (ToolCallError, InvalidResponseError) as err:
        tool_error = err
    if isinstance(tool_error, InvalidResponseError):
        if reservation is not None:
            reservation.refund()
        if tracker is not None:
            tracker.add_error(model)
        raise _invalid("model %s answered HTTP %d: %s" % (model, exchange.status, tool_error),
                       exchange, request_id)
    tool_texts = _tool_texts(raw_calls)
    usage, cost, estimated = settle_usage(
        model=model, messages=messages, usage=parse_usage(data.get("usage")),
        answer=content or "", tool_texts=tool_texts, reservation=reservation,
        catalog=catalog, tracker=tracker, failed=False)
    served = data.get("model")
    result = ChatResult(
        content=content, model=served if isinstance(served, str) and served else model,
        finish_reason=finish_reason, usage=usage, cost_usd=cost,
        latency_ms=(clock() - exchange.started) * 1000.0, attempts=exchange.attempts,
        request_id=request_id, tool_calls=tool_calls,
        rate_limit=rate_limit_of(exchange), cost_estimated=estimated, raw=data,
        attempt_log=exchange.attempt_log, gateway_cost_usd=parse_gateway_cost(headers))
    if tool_error is not None:
        # The call was billed: keep its result (usage, cost) on the error for the caller.
        tool_error.result = result  # type: ignore[attr-defined]
        raise tool_error
    return result


def _tool_texts(raw_calls: Any) -> Tuple[str, ...]:
    """The names and argument strings of raw tool calls, for a usage estimate."""
    texts = []
    for item in raw_calls if isinstance(raw_calls, list) else ():
        function = item.get("function") if isinstance(item, Mapping) else None
        if isinstance(function, Mapping):
            for key in ("name", "arguments"):
                value = function.get(key)
                if isinstance(value, str):
                    texts.append(value)
    return tuple(texts)
