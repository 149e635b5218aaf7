"""llmroute: a synchronous SDK for chat completions through OpenAI-compatible gateways."""
from __future__ import annotations

import logging

from .errors import (
    APIConnectionError, APIStatusError, APITimeoutError, AllModelsFailedError,
    AuthenticationError, BadRequestError, BudgetExceededError, ConfigError,
    ContextLengthExceededError, InternalServerError, InvalidResponseError, LLMRouteError,
    NotFoundError, PermissionDeniedError, RateLimitError, RateLimitTimeout,
    StreamInterruptedError, StructuredOutputError, ToolCallError, UnprocessableEntityError,
)
from .tokens import estimate_tokens, fit_messages

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "APIConnectionError", "APIStatusError", "APITimeoutError", "AllModelsFailedError",
    "AuthenticationError", "BadRequestError", "BudgetExceededError", "ConfigError",
    "ContextLengthExceededError", "InternalServerError", "InvalidResponseError", "LLMRouteError",
    "NotFoundError", "PermissionDeniedError", "RateLimitError", "RateLimitTimeout",
    "StreamInterruptedError", "StructuredOutputError", "ToolCallError",
    "UnprocessableEntityError",
    "estimate_tokens", "fit_messages",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
