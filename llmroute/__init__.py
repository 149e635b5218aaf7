"""llmroute: a synchronous SDK for chat completions through OpenAI-compatible gateways.

``import llmroute`` loads what a plain ``Client.chat`` needs; routing, classification, batches,
streaming, structured output, tools and the backends load on first use (PEP 562), so the import
costs little more than ``import requests``.
"""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import Client
from .errors import (
    APIConnectionError, APIStatusError, APITimeoutError, AllModelsFailedError,
    AuthenticationError, BadRequestError, BudgetExceededError, ConfigError,
    ContextLengthExceededError, InternalServerError, InvalidResponseError, LLMRouteError,
    ModelNotFoundError, NotFoundError, PermissionDeniedError, RateLimitError, RateLimitTimeout,
    StreamInterruptedError, StreamTimeoutError, StructuredOutputError, ToolCallError,
    UnprocessableEntityError,
)
from .results import Attempt, ChatResult, ToolCall, Usage
from .retry import RetryPolicy

if TYPE_CHECKING:  # what type checkers and IDEs see of the names loaded on first use
    from . import presets
    from ._headers import RateLimitInfo, parse_retry_after
    from .backends.redis_bucket import RedisTokenBucket
    from .catalog import Catalog, ModelSpec
    from .costs import Budget, CostSnapshot, CostTracker, ModelTotals
    from .batching import BatchInterrupted, BatchResult, ItemResult, batch
    from .classification import Classification, Classifier, TaskType, classify
    from .health import CooldownPolicy, LatencyStats, ModelHealth
    from .ledger import Ledger
    from .pricing_calc import compare_costs, estimate_cost
    from .limits import RateLimiter, Reservation, TokenBucket
    from .router import RouteResult, Router
    from .routes import Route, RouteTable
    from .stream import ChatStream
    from .structured import JSONResult
    from .tokens import estimate_tokens, fit_messages
    from .tools import ToolInvocation, ToolLoopError, ToolRun, run_tools, tool_schema

#: Public names loaded on first use: name -> the module that defines it.
_LAZY = {
    "RateLimitInfo": "._headers", "parse_retry_after": "._headers",
    "RedisTokenBucket": ".backends.redis_bucket",
    "BatchInterrupted": ".batching", "BatchResult": ".batching", "ItemResult": ".batching",
    "batch": ".batching",
    "Classification": ".classification", "Classifier": ".classification",
    "TaskType": ".classification", "classify": ".classification",
    "Catalog": ".catalog", "ModelSpec": ".catalog",
    "Budget": ".costs", "CostSnapshot": ".costs", "CostTracker": ".costs", "ModelTotals": ".costs",
    "CooldownPolicy": ".health", "LatencyStats": ".health", "ModelHealth": ".health",
    "Ledger": ".ledger",
    "estimate_cost": ".pricing_calc", "compare_costs": ".pricing_calc",
    "RateLimiter": ".limits", "Reservation": ".limits", "TokenBucket": ".limits",
    "RouteResult": ".router", "Router": ".router",
    "Route": ".routes", "RouteTable": ".routes",
    "ChatStream": ".stream",
    "JSONResult": ".structured",
    "estimate_tokens": ".tokens", "fit_messages": ".tokens",
    "ToolInvocation": ".tools", "ToolLoopError": ".tools", "ToolRun": ".tools",
    "run_tools": ".tools", "tool_schema": ".tools",
}
#: Public submodules reachable as attributes (``llmroute.presets``).
_LAZY_MODULES = frozenset({"presets"})

__all__ = [
    "__version__",
    "APIConnectionError", "APIStatusError", "APITimeoutError", "AllModelsFailedError",
    "AuthenticationError", "BadRequestError", "BudgetExceededError", "ConfigError",
    "ContextLengthExceededError", "InternalServerError", "InvalidResponseError", "LLMRouteError",
    "ModelNotFoundError", "NotFoundError", "PermissionDeniedError", "RateLimitError",
    "RateLimitTimeout",
    "StreamInterruptedError", "StreamTimeoutError", "StructuredOutputError", "ToolCallError",
    "UnprocessableEntityError",
    "Attempt", "ChatResult", "Client", "RetryPolicy", "ToolCall", "Usage",
    "presets",
] + sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use and cache the name in the package."""
    if name in _LAZY_MODULES:
        value: Any = importlib.import_module("." + name, __name__)
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


logging.getLogger(__name__).addHandler(logging.NullHandler())
