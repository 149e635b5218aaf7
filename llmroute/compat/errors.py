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
from typing import Any, Dict, Mapping, Optional, Type

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


#: llmroute class -> the shim class it becomes; the nearest entry of the error's MRO wins.
_BY_CLASS: Dict[type, type] = {
    core.BadRequestError: BadRequestError,
    core.AuthenticationError: AuthenticationError,
    core.PermissionDeniedError: PermissionDeniedError,
    core.NotFoundError: NotFoundError,
    core.UnprocessableEntityError: UnprocessableEntityError,
    core.RateLimitError: RateLimitError,
    core.InternalServerError: InternalServerError,
    core.APIStatusError: APIStatusError,
    core.APITimeoutError: APITimeoutError,
    core.APIConnectionError: APIConnectionError,
    core.InvalidResponseError: APIResponseValidationError,
    core.RateLimitTimeout: RateLimitError,
    core.AllModelsFailedError: APIError,
    core.ToolCallError: APIResponseValidationError,
    core.LLMRouteError: OpenAIError,
}
#: Statuses llmroute raises as a plain APIStatusError that openai has a class for.
_BY_STATUS: Dict[int, type] = {409: ConflictError}

# Guards _COMBINED: classes made once per llmroute subclass the table does not name.
_combined_lock = threading.Lock()
_COMBINED: Dict[Type[BaseException], type] = {}


def _shim_class(error: core.LLMRouteError) -> type:
    """The class a translated error gets: an instance of both the shim's class and the error's."""
    kind = type(error)
    base = next(_BY_CLASS[k] for k in kind.__mro__ if k in _BY_CLASS)
    if kind is core.APIStatusError:
        base = _BY_STATUS.get(getattr(error, "status_code", 0), base)
    if issubclass(base, kind):
        return base
    with _combined_lock:
        combined = _COMBINED.get(kind)
        if combined is None:
            combined = type(kind.__name__, (base, kind), {
                "__module__": __name__, "__doc__": kind.__doc__})
            _COMBINED[kind] = combined
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
