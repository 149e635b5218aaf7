"""The exception tree: one root, a class per HTTP status family, built from a table.

Every exception carries what a caller needs (status, request id, a short body excerpt,
``retry_after``) and never the API key: messages and bodies pass through ``redact``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Tuple

from ._lazy import LazyPattern

__all__ = [
    "LLMRouteError", "ConfigError", "RateLimitTimeout", "APIConnectionError", "APITimeoutError",
    "APIStatusError", "BadRequestError", "ContextLengthExceededError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ModelNotFoundError", "UnprocessableEntityError", "RateLimitError",
    "InternalServerError", "InvalidResponseError", "BudgetExceededError", "AllModelsFailedError",
    "StructuredOutputError", "ToolCallError", "StreamInterruptedError", "StreamTimeoutError",
    "BackendUnavailableError",
    "status_error",
]

#: How much of an error body an exception keeps: enough to read, not a whole HTML page.
BODY_EXCERPT_CHARS = 500

# Things that look like credentials, scrubbed from any text an exception or log may show.
_SECRET_PATTERN = LazyPattern(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}|\b(sk|pk|rk|key|api)[-_][A-Za-z0-9._-]{8,}"
)


def redact(text: str, secrets: tuple = ()) -> str:
    """Remove the given secrets and anything shaped like a bearer token or ``sk-…`` key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return _SECRET_PATTERN.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)


class LLMRouteError(Exception):
    """Base of every error llmroute raises."""


class ConfigError(LLMRouteError, ValueError):
    """The client or router is configured wrongly (missing key, bad URL, bad option)."""


class RateLimitTimeout(LLMRouteError, TimeoutError):
    """A local rate-limit wait would run past the caller's timeout or deadline."""


class APIConnectionError(LLMRouteError):
    """No complete HTTP answer: refused, DNS, TLS, reset, or a 2xx body cut, stalled or corrupt.

    ``request_sent`` is False only when the request surely never reached the server (refused,
    DNS, connect timeout): then nothing was billed. True means it may have been billed.
    ``attempt_log`` holds one ``Attempt`` record per try of the call that raised it.
    """

    def __init__(self, message: str, *, request_sent: bool = True,
                 attempt_log: Tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.attempt_log = tuple(attempt_log)


class APITimeoutError(APIConnectionError):
    """The server did not connect, answer or send the rest of its body within the time allowed."""


class InvalidResponseError(LLMRouteError):
    """A complete 2xx answer of the wrong shape (not JSON, no choices, an error object).

    A 2xx arrived, so the call may have been billed; it is not retried (the same server would
    answer the same), but a router may fall back to another model.
    """

    #: A 2xx arrived: the gateway may have billed the call.
    request_sent = True

    def __init__(self, message: str, *, status_code: int = 200, request_id: Optional[str] = None,
                 body: str = "", attempt_log: Tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.attempt_log = tuple(attempt_log)


class APIStatusError(LLMRouteError):
    """The server answered with a non-2xx status."""

    def __init__(self, message: str, *, status_code: int, request_id: Optional[str] = None,
                 body: str = "", retry_after: Optional[float] = None,
                 headers: Optional[Mapping[str, str]] = None,
                 attempt_log: Tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        #: One ``Attempt`` record per try of the call that raised it.
        self.attempt_log = tuple(attempt_log)


class BadRequestError(APIStatusError):
    """400: the request is malformed; it would fail on any retry."""


class ContextLengthExceededError(BadRequestError):
    """400: the prompt plus max_tokens do not fit the model's context window."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: unknown model or wrong base URL."""


class ModelNotFoundError(NotFoundError):
    """400 or 404: the gateway does not know the model; ``status_code`` keeps the real status."""


class UnprocessableEntityError(APIStatusError):
    """422: the body parsed but a parameter is invalid."""


class RateLimitError(APIStatusError):
    """429 (or a local refusal to wait on a shared pause): slow down; see ``retry_after``."""


class InternalServerError(APIStatusError):
    """5xx: the gateway or the provider failed."""


class BudgetExceededError(LLMRouteError):
    """The next call's worst-case cost would exceed the running budget; nothing was sent."""

    def __init__(self, message: str, *, limit_usd: Any = None, spent_usd: Any = None,
                 needed_usd: Any = None) -> None:
        super().__init__(message)
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.needed_usd = needed_usd


class BackendUnavailableError(LLMRouteError):
    """A shared-state backend (Redis) did not answer and the caller asked to be told so."""


class AllModelsFailedError(LLMRouteError):
    """Every candidate model of a route failed or was skipped; ``errors`` lists each."""

    def __init__(self, message: str, *, errors: Any = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class StructuredOutputError(LLMRouteError):
    """The model's JSON stayed invalid after every repair turn."""

    def __init__(self, message: str, *, content: str = "", errors: Any = ()) -> None:
        super().__init__(message)
        self.content = content
        self.errors = list(errors)


class ToolCallError(LLMRouteError):
    """A tool call's arguments are not valid JSON; ``raw`` holds the string received."""

    def __init__(self, message: str, *, raw: str = "", name: str = "", call_id: str = "") -> None:
        super().__init__(message)
        self.raw = raw
        self.name = name
        self.call_id = call_id
        #: The ChatResult of the billed call whose arguments failed to decode, when known.
        self.result: Any = None


class StreamInterruptedError(APIConnectionError):
    """A stream broke after its first byte; ``partial_text`` holds what arrived."""

    def __init__(self, message: str, *, partial_text: str = "",
                 attempt_log: Tuple[Any, ...] = ()) -> None:
        super().__init__(message, request_sent=True, attempt_log=attempt_log)
        self.partial_text = partial_text


class StreamTimeoutError(StreamInterruptedError, APITimeoutError):
    """A stream sent no event for the read timeout, or ran past its deadline."""


_STATUS_CLASSES = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

# Codes and phrases providers use for "prompt too long" (OpenAI, Anthropic, Google, vLLM).
_CONTEXT_LENGTH_PATTERN = LazyPattern(
    r"context_length_exceeded|maximum context length|context window|prompt is too long"
    r"|too many tokens|input is too long|exceeds the (?:maximum|model)",
    re.IGNORECASE,
)


# How gateways say "no such model": OpenAI's code and message, LiteLLM's router. Strict, since a
# 400 that matches is no longer a BadRequestError.
_MODEL_NOT_FOUND_PATTERN = LazyPattern(
    r"model_not_found|invalid model name passed in model\s*=|the model `[^`]{0,200}` does not exist",
    re.IGNORECASE,
)
# On a 404 a looser wording is enough (vLLM, Ollama: 'model "x" not found'): a 404 is a
# NotFoundError either way.
_MODEL_404_PATTERN = LazyPattern(
    r"\bmodel\b[^\n]{0,200}?\b(?:not found|does not exist|is not available)", re.IGNORECASE)


def status_error_class(status: int, body: str = "") -> type:
    """The exception class for an HTTP status and, for 400 and 404, what the body says."""
    body = body or ""
    if status in (400, 404) and _MODEL_NOT_FOUND_PATTERN.search(body):
        return ModelNotFoundError
    if status == 404 and _MODEL_404_PATTERN.search(body):
        return ModelNotFoundError
    if status == 400 and _CONTEXT_LENGTH_PATTERN.search(body):
        return ContextLengthExceededError
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return InternalServerError
    return APIStatusError


def status_error(status: int, *, body: str = "", request_id: Optional[str] = None,
                 retry_after: Optional[float] = None, model: str = "",
                 headers: Optional[Mapping[str, str]] = None,
                 secrets: tuple = ()) -> APIStatusError:
    """Build the typed error for a non-2xx answer; the body is redacted and cut short."""
    excerpt = redact(body or "", secrets)[:BODY_EXCERPT_CHARS]
    cls = status_error_class(status, excerpt)
    detail = _error_detail(excerpt)
    where = " from %s" % model if model else ""
    message = "HTTP %d%s: %s" % (status, where, detail or cls.__doc__.split(":")[-1].strip())
    if retry_after is not None:
        message += " (retry after %gs)" % retry_after
    return cls(message, status_code=status, request_id=request_id, body=excerpt,
               retry_after=retry_after, headers=headers)


def _error_detail(excerpt: str) -> str:
    """The ``error.message`` of a JSON body, or the start of the body, on one line."""
    import json

    try:
        data = json.loads(excerpt)
    except ValueError:
        return " ".join(excerpt.split())[:200]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "")[:200]
        if isinstance(error, str):
            return error[:200]
    return ""
