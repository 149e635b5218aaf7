"""Optional backends keeping llmroute's shared state on a server (Redis).

Nothing here is imported by ``import llmroute``; the ``redis`` package itself is imported only
when a Redis backend is created (``pip install 'llmroute[redis]'``).
"""
from __future__ import annotations

from .redis_bucket import RedisTokenBucket

__all__ = ["RedisTokenBucket"]
