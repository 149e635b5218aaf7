"""Candidate selection for the router: per-model request params, static filters and ordering.

Pure functions of the route, the caller's params, the prompt estimate and the catalog: what
each model would be sent, whether it can take the call at all (window, price cap, features),
and in which order ``priority`` tries them. Nothing here talks to the network or holds a lock.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._options import reserved_output_tokens
from .catalog import Catalog, ModelSpec
from .routes import Route

__all__ = ["PRIORITIES", "CONTEXT_MARGIN", "Candidate", "build_candidates", "order_candidates",
           "mentions_json"]

#: How candidates are ordered: the route's own order, strengths first, speed, or price.
PRIORITIES = ("balanced", "accuracy", "speed", "budget")
#: Share of a context window kept free: the token estimate is a heuristic (COMPARISON.md: 90%).
CONTEXT_MARGIN = 0.10

# Skip kinds: why a model was passed over, which becomes RouteResult.routed_via.
BUDGET, CONTEXT_FIT, FALLBACK = "budget", "context_fit", "fallback"

_JSON_WORD = re.compile(r"json", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    """One model of the route as it would be called, or why it cannot be (``skip``)."""

    model: str
    index: int
    spec: Optional[ModelSpec]
    params: Dict[str, Any]
    max_tokens: int
    worst_case: Optional[Decimal]
    skip: Optional[str] = None
    skip_kind: Optional[str] = None


def mentions_json(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any message's text says "json": OpenAI-compatible APIs refuse ``json_object``
    mode otherwise (shared with structured output, which adds the word when it is missing)."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        if isinstance(content, str) and _JSON_WORD.search(content):
            return True
    return False


def request_params(route: Route, caller: Mapping[str, Any], spec: Optional[ModelSpec],
                   messages: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """The route's params adapted to one model, then the caller's on top (caller wins).

    Route params a model cannot use are dropped rather than sent: ``thinking`` to a model
    without the "thinking" feature, ``tool_choice`` without tools, and a ``json_object``
    response_format when no message mentions JSON (OpenAI-compatible APIs answer 400 then).
    A caller's ``None`` removes a route param; caller params are always sent as given.
    """
    params = route.request_params()
    if "thinking" in params and spec is not None and not spec.supports("thinking"):
        del params["thinking"]
    if "tool_choice" in params and not caller.get("tools"):
        del params["tool_choice"]
    fmt = params.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_object" \
            and not mentions_json(messages):
        del params["response_format"]
    if caller.get("max_completion_tokens") is not None:
        params.pop("max_tokens", None)  # one output limit, the caller's
    for key, value in caller.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def _missing_feature(caller: Mapping[str, Any], spec: Optional[ModelSpec]) -> Optional[str]:
    """The catalog feature the caller's params need and the model lacks (known models only)."""
    if spec is None:
        return None  # not in the catalog: unknown is not incapable
    if caller.get("tools") and not spec.supports("tools"):
        return "tools"
    fmt = caller.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema") \
            and not spec.supports(fmt["type"]):
        return fmt["type"]
    return None


def fits_window(spec: Optional[ModelSpec], prompt_tokens: int, max_tokens: int) -> bool:
    """Whether prompt + max_tokens stay within 90% of the model's window (unknown: assume so)."""
    if spec is None or not spec.context_window:
        return True
    return prompt_tokens + max_tokens <= (1 - CONTEXT_MARGIN) * spec.context_window


def build_candidates(route: Route, caller: Mapping[str, Any],
                     messages: Sequence[Mapping[str, Any]], prompt_tokens: int,
                     catalog: Catalog, max_cost_usd: Optional[Decimal]) -> List[Candidate]:
    """Every model of ``route`` with its params, worst-case cost and any static skip reason."""
    candidates = []
    for index, model in enumerate(route.models):
        spec = catalog.get(model)
        params = request_params(route, caller, spec, messages)
        max_tokens = reserved_output_tokens(catalog, model, params)
        worst = (spec or catalog.spec(model)).worst_case_cost(prompt_tokens, max_tokens)
        skip = kind = None
        feature = _missing_feature(caller, spec)
        if feature is not None:
            skip, kind = "lacks the %r feature the call needs" % feature, FALLBACK
        elif not fits_window(spec, prompt_tokens, max_tokens):
            skip, kind = ("~%d prompt + %d max_tokens tokens exceed 90%% of its %d-token window"
                          % (prompt_tokens, max_tokens, spec.context_window), CONTEXT_FIT)
        elif max_cost_usd is not None and worst is None:
            skip, kind = "no price, so it cannot be held to max_cost_usd", BUDGET
        elif max_cost_usd is not None and worst > max_cost_usd:
            skip, kind = ("worst case $%s exceeds max_cost_usd $%s"
                          % (_usd(worst), max_cost_usd), BUDGET)
        candidates.append(Candidate(model, index, spec, params, max_tokens, worst, skip, kind))
    return candidates


def order_candidates(candidates: List[Candidate], priority: str, task: str,
                     p50s: Mapping[str, Optional[float]]) -> Tuple[List[Candidate], str]:
    """Sort by ``priority``; also say, for a reason line, why the first one leads."""
    if priority == "accuracy":
        ranked = sorted(candidates, key=lambda c: (
            not (c.spec is not None and task in c.spec.strengths), c.index))
        first = ranked[0]
        strong = first.spec is not None and task in first.spec.strengths
        return ranked, ("first by accuracy (%s is among its strengths)" % task if strong
                        else "first in route (no model lists %s as a strength)" % task)
    if priority == "speed":
        def speed_key(c: Candidate) -> Tuple[int, float, int]:
            p50 = p50s.get(c.model)
            if p50 is not None:  # a measurement beats a catalog claim
                return 0, p50, c.index
            tps = c.spec.tokens_per_second if c.spec is not None else None
            if tps:
                return 1, -tps, c.index
            return 2, 0.0, c.index
        ranked = sorted(candidates, key=speed_key)
        first = ranked[0]
        p50 = p50s.get(first.model)
        if p50 is not None:
            return ranked, "fastest observed (p50 %.0f ms)" % p50
        if first.spec is not None and first.spec.tokens_per_second:
            return ranked, "fastest by catalog (%g tok/s; no latency data yet)" % (
                first.spec.tokens_per_second,)
        return ranked, "first in route (no speed data)"
    if priority == "budget":
        ranked = sorted(candidates, key=lambda c: (
            c.worst_case is None, c.worst_case or Decimal(0), c.index))
        first = ranked[0]
        return ranked, ("cheapest (worst case $%s)" % _usd(first.worst_case)
                        if first.worst_case is not None else "first in route (no prices)")
    return list(candidates), "first in route"


def _usd(amount: Optional[Decimal]) -> str:
    """Money for a message: six decimals are enough to compare call costs."""
    return "?" if amount is None else "%.6f" % amount
