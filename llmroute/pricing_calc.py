"""The cost calculator: what a workload costs at the catalog price and at the list price.

All arithmetic is the catalog's own (``ModelSpec.cost`` and ``ModelSpec.list_cost``), in exact
``Decimal``; this module only validates, compares and scales by period.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Iterable, Optional, Tuple

from .catalog import Catalog, default_catalog

__all__ = ["CostEstimate", "estimate_cost", "compare_costs", "parse_token_count",
           "MONTHS_PER", "MAX_TOKENS"]

#: Months in each ``per`` period the calculator accepts (a year is 12 months).
MONTHS_PER = {"month": 1, "year": 12}
#: The largest token count the calculator takes: a billion billion tokens is far past any
#: workload, and the bound keeps costs within the digits ``Decimal`` formats exactly.
MAX_TOKENS = 10 ** 18
#: Powers of ten of each suffix (k, M, B, T).
_SUFFIXES = {"": 0, "k": 3, "m": 6, "b": 9, "t": 12}
#: Plain decimal digits with an optional fraction: no sign, no exponent, no NaN or infinity.
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


@dataclass(frozen=True)
class CostEstimate:
    """One model's cost for a workload: catalog price, list price, and what the gap saves."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: Optional[Decimal]        # None: the catalog has no price for the model
    list_cost_usd: Optional[Decimal]   # None: no list price stated

    @property
    def saving_usd(self) -> Optional[Decimal]:
        """List price minus catalog price, when both are known."""
        if self.cost_usd is None or self.list_cost_usd is None:
            return None
        return self.list_cost_usd - self.cost_usd

    @property
    def saving_rate(self) -> Optional[Decimal]:
        """The saving as a fraction of the list price (0.76 is 76 %)."""
        saving = self.saving_usd
        if saving is None or not self.list_cost_usd:
            return None
        return saving / self.list_cost_usd


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s must be a non-negative whole number of tokens, got %r"
                         % (name, value))
    if value > MAX_TOKENS:  # no %r: a huge int is past what Python turns into text
        raise ValueError("%s must be at most 10^18 tokens" % name)
    return value


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int,
                  cached_tokens: int = 0, catalog: Optional[Catalog] = None) -> CostEstimate:
    """The cost of ``prompt_tokens`` in and ``completion_tokens`` out on ``model``.

    Raises ``ValueError`` for a model the catalog does not know or a bad token count.
    """
    prompt = _count(prompt_tokens, "prompt_tokens")
    completion = _count(completion_tokens, "completion_tokens")
    cached = _count(cached_tokens, "cached_tokens")
    if cached > prompt:
        raise ValueError("cached_tokens (%d) cannot exceed prompt_tokens (%d)" % (cached, prompt))
    catalog = catalog if catalog is not None else default_catalog()
    spec = catalog.get(model) if isinstance(model, str) else None
    if spec is None:
        raise ValueError("model %r is not in the catalog (known: %s)"
                         % (model, ", ".join(catalog.names())))
    return CostEstimate(spec.name, prompt, completion, cached,
                        spec.cost(prompt, completion, cached), spec.list_cost(prompt, completion))


def compare_costs(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
                  catalog: Optional[Catalog] = None, models: Optional[Iterable[str]] = None
                  ) -> Tuple[CostEstimate, ...]:
    """The same workload on every catalog model (or ``models``), cheapest first, unpriced last."""
    catalog = catalog if catalog is not None else default_catalog()
    names = list(models) if models is not None else list(catalog.names())
    estimates = [estimate_cost(name, prompt_tokens, completion_tokens, cached_tokens, catalog)
                 for name in names]
    return tuple(sorted(estimates, key=lambda e: (e.cost_usd is None, e.cost_usd or 0, e.model)))


def parse_token_count(text: str, name: str = "token count") -> int:
    """``500M``, ``1.5B``, ``20k``, ``250000`` (suffixes k/M/B/T in either case) as an int.

    Parsed exactly (no rounding at any length); exponent notation is refused. Raises
    ``ValueError`` naming ``name`` for anything that is not a whole number of tokens.
    """
    raw = str(text).strip().replace("_", "").replace(",", "")
    suffix = raw[-1:].lower() if raw[-1:].isalpha() else ""
    if suffix not in _SUFFIXES:
        raise ValueError("%s: unknown suffix in %r (use k, M, B or T)" % (name, text))
    digits = raw[:len(raw) - len(suffix)]
    if not _NUMBER.fullmatch(digits):
        raise ValueError("%s must be a number of tokens such as 500M, 1.5B, 20k or 250000, "
                         "got %r" % (name, text))
    with localcontext() as exact:  # enough digits that scaling by the suffix never rounds
        exact.prec = len(digits) + max(_SUFFIXES.values()) + 1
        number = Decimal(digits).scaleb(_SUFFIXES[suffix])
    if number != number.to_integral_value():
        raise ValueError("%s must be a whole number of tokens, got %r" % (name, text))
    return int(number)
