"""Exceptions with the ``openai`` SDK's names and attributes that are also llmroute's own.

``compat.RateLimitError`` is both what ``except openai.RateLimitError`` code expects
(``.status_code``, ``.message``, ``.body`` as parsed JSON, ``.code``, ``.type``, ``.param``,
``.request_id``) and an ``llmroute.RateLimitError`` (``.retry_after``, ``.headers``). There is no
httpx object behind them: ``.request`` and ``.response`` are ``None``. ``translate`` turns any
llmroute error into the matching class here, keeping every attribute it had.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Dict, Mapping, Optional, Tuple

from .. import errors as core

__all__ = [
    "OpenAIError", "APIError", "APIStatusError", "APIConnectionError", "APITimeoutError",
    "APIResponseValidationError", "BadRequestError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "UnprocessableEntityError",
    "RateLimitError", "InternalServerError", "translate",
]


class OpenAIError(core.LLMRouteError):
    """Base of the shim's errors, as ``openai.OpenAIError``; also an ``llmroute.LLMRouteError``."""


class APIError(OpenAIError):
    """An error about a request: ``message``, ``body`` (parsed JSON or text), ``code``,
    ``param``, ``type``; ``request`` is ``None`` (no httpx request behind it)."""

    message: str = ""
    request: Any = None
    body: Any = None
    code: Optional[str] = None
    param: Optional[str] = None
    type: Optional[str] = None


class APIStatusError(APIError, core.APIStatusError):
    """A 4xx/5xx answer: ``status_code``, ``request_id``; ``response`` is ``None``."""

    response: Any = None


class APIConnectionError(APIError, core.APIConnectionError):
    """No HTTP answer: refused, reset, DNS, TLS, or a stream cut in the middle."""


class APITimeoutError(APIConnectionError, core.APITimeoutError):
    """The server did not connect or answer within the timeout."""


class APIResponseValidationError(APIError, core.InvalidResponseError):
    """A 2xx answer whose body is not the completion expected."""


class BadRequestError(APIStatusError, core.BadRequestError):
    """400."""


class AuthenticationError(APIStatusError, core.AuthenticationError):
    """401."""


class PermissionDeniedError(APIStatusError, core.PermissionDeniedError):
    """403."""


class NotFoundError(APIStatusError, core.NotFoundError):
    """404."""


class ConflictError(APIStatusError):
    """409 (llmroute has no class of its own for it: an ``llmroute.APIStatusError``)."""


class UnprocessableEntityError(APIStatusError, core.UnprocessableEntityError):
    """422."""


class RateLimitError(APIStatusError, core.RateLimitError):
    """429, a shared pause longer than allowed, or a local rate-limit wait that would pass the
    deadline (then also an ``llmroute.RateLimitTimeout``: nothing was sent)."""


class InternalServerError(APIStatusError, core.InternalServerError):
    """5xx."""


#: openai's class for each status (its ``_make_status_error``); other 5xx: InternalServerError.
_BY_STATUS: Dict[int, type] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 422: UnprocessableEntityError, 429: RateLimitError,
}
#: llmroute errors without a status -> the shim class; the nearest entry of the MRO wins.
_BY_CLASS: Dict[type, type] = {
    core.APITimeoutError: APITimeoutError,
    core.APIConnectionError: APIConnectionError,
    core.InvalidResponseError: APIResponseValidationError,
    core.RateLimitTimeout: RateLimitError,
    core.AllModelsFailedError: APIError,
    core.ToolCallError: APIResponseValidationError,
    core.LLMRouteError: OpenAIError,
}

# Guards _COMBINED: classes made once per (shim class, llmroute class) the tables do not pair.
_combined_lock = threading.Lock()
_COMBINED: Dict[Tuple[type, type], type] = {}


def _status_class(status: int) -> type:
    """The class openai raises for ``status``."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    return InternalServerError if status >= 500 else APIStatusError


def _shim_class(error: core.LLMRouteError) -> type:
    """The class a translated error gets: openai's for its status (or kind), and the error's own.

    A status decides as in openai (a 400 that llmroute reads as ``ModelNotFoundError`` is a
    ``BadRequestError`` here, and still an ``llmroute.ModelNotFoundError``).
    """
    kind = type(error)
    if isinstance(error, core.APIStatusError):
        base = _status_class(error.status_code)
    else:
        base = next(_BY_CLASS[k] for k in kind.__mro__ if k in _BY_CLASS)
    if issubclass(base, kind):
        return base
    with _combined_lock:
        combined = _COMBINED.get((base, kind))
        if combined is None:
            combined = type(kind.__name__, (base, kind), {
                "__module__": __name__, "__doc__": kind.__doc__})
            _COMBINED[(base, kind)] = combined
        return combined


def _parsed_body(text: str) -> Any:
    """openai's ``.body``: the ``error`` object of a JSON body, the JSON, or the text."""
    text = (text or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    return data.get("error", data) if isinstance(data, Mapping) else data


def translate(error: BaseException) -> BaseException:
    """``error`` as the shim's class for it (attributes kept), or unchanged if not llmroute's."""
    if isinstance(error, OpenAIError) or not isinstance(error, core.LLMRouteError):
        return error
    cls = _shim_class(error)
    new = cls.__new__(cls)
    new.__dict__.update(vars(error))
    status = getattr(error, "status_code", None)
    message = str(error)
    body: Any = None
    if isinstance(error, core.APIStatusError):
        body = _parsed_body(error.body)
        message = "Error code: %d" % status
        detail = body.get("message") if isinstance(body, Mapping) else None
        if isinstance(detail, str) and detail:
            message += " - " + detail
    elif isinstance(error, core.RateLimitTimeout):
        new.status_code, new.request_id, new.retry_after, new.headers = 429, None, None, {}
    elif isinstance(error, core.InvalidResponseError):
        body = _parsed_body(error.body) if error.body else None
    new.args = (message,)
    new.message = message
    new.body = body
    if isinstance(body, Mapping):
        code = body.get("code")
        new.code = str(code) if code is not None else None
        new.param = body.get("param") if isinstance(body.get("param"), str) else None
        new.type = body.get("type") if isinstance(body.get("type"), str) else None
    new.__cause__ = error.__cause__
    new.__suppress_context__ = True
    return new
