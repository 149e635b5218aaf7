"""One set of argument checks for every public constructor and call: clear ValueErrors, up front.

Rules shared by all of llmroute: booleans are never numbers, NaN and infinity are refused unless a
caller says otherwise, and every message names the argument and shows the value received.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Union

__all__ = ["number", "text", "choice", "money", "callable_"]

Number = Union[int, float]


def _describe(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return "%s (%s)" % (shown, type(value).__name__)


def _not_a_number(value: Any, integer: bool) -> bool:
    """Whether ``value`` (not a plain int or float) fails the ``numbers`` ABCs; ``numbers`` is
    imported here, on the rare path, so that ``import llmroute`` does not load it."""
    import numbers

    return isinstance(value, bool) or not isinstance(value, numbers.Real) or (
        integer and not isinstance(value, numbers.Integral))


def number(name: str, value: Any, *, minimum: Optional[Number] = None,
           above: Optional[Number] = None, maximum: Optional[Number] = None,
           integer: bool = False, allow_none: bool = False,
           allow_inf: bool = False) -> Any:
    """``value`` checked as a number: a float (an int if ``integer``), or None if ``allow_none``.

    Any ``numbers.Real`` counts (int, float, Fraction, numpy scalars), not ``Decimal`` (money
    has its own check). ``minimum``/``maximum`` are inclusive bounds, ``above`` an exclusive lower bound (``above=0``
    means positive). Booleans, strings and NaN are always refused; infinity unless ``allow_inf``.
    Raises ValueError naming ``name``.
    """
    if value is None and allow_none:
        return None
    exact = type(value)
    if (exact is not float or integer) and exact is not int and _not_a_number(value, integer):
        # (a plain int or float skips the ABC checks: they are the usual values, on hot paths)
        kind = "an integer" if integer else "a number"
        raise ValueError("%s must be %s%s, got %s"
                         % (name, kind, " or None" if allow_none else "", _describe(value)))
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError("%s must be a finite number, got %r" % (name, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s must be >= %g, got %r" % (name, minimum, value))
    if above is not None and value <= above:
        raise ValueError("%s must be > %g, got %r" % (name, above, value))
    if maximum is not None and value > maximum:
        raise ValueError("%s must be <= %g, got %r" % (name, maximum, value))
    return int(value) if integer else float(value)


def text(name: str, value: Any, *, allow_empty: bool = False, allow_none: bool = False) -> Any:
    """``value`` checked as a str (non-blank unless ``allow_empty``); ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ValueError("%s must be a string, got %s" % (name, _describe(value)))
    if not allow_empty and not value.strip():
        raise ValueError("%s must be a non-empty string, got %r" % (name, value))
    return value


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """``value`` checked to be one of ``options``; ValueError naming ``name`` and the options."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError("%s must be one of %s, got %s"
                         % (name, ", ".join(repr(o) for o in options), _describe(value)))
    return value


def money(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """``value`` as a non-negative finite ``Decimal`` (from a Decimal, int or numeric str).

    Floats are refused because they are not exact; booleans because they are not amounts.
    Raises ValueError naming ``name``.
    """
    from decimal import Decimal, InvalidOperation  # money is checked where money is used

    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        if isinstance(value, float):
            raise ValueError("%s must be a Decimal, int or str, not float (%r): money is exact"
                             % (name, value))
        raise ValueError("%s must be an amount of dollars (Decimal, int or str), got %s"
                         % (name, _describe(value)))
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise ValueError("%s must be an amount of dollars, got %r" % (name, value)) from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("%s must be a non-negative amount, got %r" % (name, value))
    return amount


def callable_(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """``value`` checked to be callable (a clock, a sleep, a hook); ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if not callable(value):
        raise ValueError("%s must be callable, got %s" % (name, _describe(value)))
    return value
