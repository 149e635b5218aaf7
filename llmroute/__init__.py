"""llmroute: a synchronous SDK for chat completions through OpenAI-compatible gateways."""
from __future__ import annotations

import logging

__version__ = "0.1.0"  # before the imports: client.py reads it for the User-Agent

from .errors import (
    APIConnectionError, APIStatusError, APITimeoutError, AllModelsFailedError,
    AuthenticationError, BadRequestError, BudgetExceededError, ConfigError,
    ContextLengthExceededError, InternalServerError, InvalidResponseError, LLMRouteError,
    NotFoundError, PermissionDeniedError, RateLimitError, RateLimitTimeout,
    StreamInterruptedError, StructuredOutputError, ToolCallError, UnprocessableEntityError,
)
from .batch import BatchInterrupted, BatchResult, ItemResult, batch
from .catalog import Catalog, ModelSpec
from .classify import Classification, Classifier, TaskType, classify
from .client import Client
from .costs import Budget, CostSnapshot, CostTracker, ModelTotals
from .limits import RateLimiter, Reservation, TokenBucket
from ._headers import RateLimitInfo, parse_retry_after
from . import presets
from .health import CooldownPolicy, LatencyStats, ModelHealth
from .results import ChatResult, ToolCall, Usage
from .retry import RetryPolicy
from .router import RouteResult, Router
from .routes import Route, RouteTable
from .stream import ChatStream
from .structured import JSONResult
from .tools import ToolInvocation, ToolLoopError, ToolRun, run_tools, tool_schema
from .tokens import estimate_tokens, fit_messages
from .ledger import Ledger
from .pricing_calc import estimate_cost
from .pricing_calc import compare_costs


__all__ = [
    "__version__",
    "APIConnectionError", "APIStatusError", "APITimeoutError", "AllModelsFailedError",
    "AuthenticationError", "BadRequestError", "BudgetExceededError", "ConfigError",
    "ContextLengthExceededError", "InternalServerError", "InvalidResponseError", "LLMRouteError",
    "NotFoundError", "PermissionDeniedError", "RateLimitError", "RateLimitTimeout",
    "StreamInterruptedError", "StructuredOutputError", "ToolCallError",
    "UnprocessableEntityError",
    "Budget", "Catalog", "ChatResult", "Client", "CostSnapshot", "CostTracker", "ModelSpec",
    "ModelTotals", "RateLimitInfo", "RateLimiter", "Reservation", "RetryPolicy", "TokenBucket",
    "ToolCall", "Usage", "parse_retry_after",
    "CooldownPolicy", "LatencyStats", "ModelHealth", "Route", "RouteResult", "RouteTable",
    "Router", "presets", "ChatStream", "JSONResult", "ToolInvocation", "ToolLoopError",
    "ToolRun", "run_tools", "tool_schema",
    "Classification", "Classifier", "TaskType", "classify",
    "BatchInterrupted", "BatchResult", "ItemResult", "batch",
    "estimate_tokens", "fit_messages",
    "Ledger",
    "estimate_cost",
    "compare_costs",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
