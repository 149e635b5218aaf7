"""Small statistics shared by the modules that report latencies."""
from __future__ import annotations

import math
from typing import Optional, Sequence

__all__ = ["nearest_rank", "percentile"]


def nearest_rank(count: int, pct: float) -> int:
    """The 1-based nearest rank of the ``pct`` percentile (0-100) among ``count`` values."""
    return min(max(int(math.ceil(pct / 100.0 * count)), 1), count)


def percentile(ordered: Sequence[float], pct: float) -> Optional[float]:
    """The nearest-rank ``pct`` percentile of values sorted ascending; None when empty."""
    if not ordered:
        return None
    return ordered[nearest_rank(len(ordered), pct) - 1]
