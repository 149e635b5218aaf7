"""A drop-in for code written against the ``openai`` SDK's chat completions, on llmroute.

Change one import line per module::

    from llmroute.compat import OpenAI, RateLimitError, APIError   # was: from openai import ...

and ``client.chat.completions.create(...)`` gets llmroute's retries, shared pauses, limits,
costs and, with ``model="auto"``, routing. Nothing in the core imports this package.
"""
from __future__ import annotations

from .client import (DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, NOT_GIVEN, NotGiven, Omit, OpenAI,
                     Timeout, omit)
from .errors import (APIConnectionError, APIError, APIResponseValidationError, APIStatusError,
                     APITimeoutError, AuthenticationError, BadRequestError, ConflictError,
                     InternalServerError, NotFoundError, OpenAIError, PermissionDeniedError,
                     RateLimitError, UnprocessableEntityError)
from .models import ChatCompletion, ChatCompletionChunk
from .streaming import Stream

__all__ = [
    "OpenAI", "Stream", "ChatCompletion", "ChatCompletionChunk", "NOT_GIVEN", "NotGiven",
    "omit", "Omit", "DEFAULT_MAX_RETRIES", "DEFAULT_TIMEOUT", "Timeout",
    "OpenAIError", "APIError", "APIStatusError", "APIConnectionError", "APITimeoutError",
    "APIResponseValidationError", "BadRequestError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "UnprocessableEntityError",
    "RateLimitError", "InternalServerError",
]
