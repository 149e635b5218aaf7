"""A regular expression compiled on first use, so that ``import llmroute`` stays cheap.

Compiling the package's patterns at import costs milliseconds that most processes never need
(a redaction pattern matters only when an error is built). Two threads compiling at once is
harmless: both get the same pattern from ``re``'s own cache.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["LazyPattern"]


class LazyPattern:
    """Stands for ``re.compile(pattern, flags)``; the first method used compiles it."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not yet in the instance dict: bind the compiled pattern's
        # method here, so later calls cost a plain attribute lookup.
        value = getattr(re.compile(self.pattern, self.flags), name)
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return "LazyPattern(%r)" % (self.pattern,)
