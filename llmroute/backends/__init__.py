"""Optional backends keeping llmroute's shared state on a server (Redis).

``import llmroute`` loads only ``redis_bucket`` and ``redis_client`` (no ``redis``); the other
modules load when a backend is configured, and the ``redis`` package itself only when a Redis
backend is created (``pip install 'llmroute[redis]'``).
"""
from __future__ import annotations

from .redis_bucket import RedisTokenBucket

__all__ = ["RedisTokenBucket"]
