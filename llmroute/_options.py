"""What a chat call's arguments mean, for every module that builds or checks one.

The client, the router and the command line each need to know which keyword arguments of
``Client.chat`` steer the client rather than go into the request body, and how many output
tokens a call may use when it does not say. Both facts live here, once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # only for the annotation: this module imports nothing at run time
    from .catalog import Catalog

__all__ = ["CALL_OPTIONS", "DEFAULT_MAX_OUTPUT_TOKENS", "reserved_output_tokens"]

#: Options of ``Client.chat`` that steer the client and are never sent in the request body.
CALL_OPTIONS = frozenset({"deadline", "timeout", "idempotency_key", "extra_headers",
                          "ledger_tag", "ledger_task", "ledger_routed_via"})
#: Output tokens assumed when neither the call nor the catalog gives a limit: enough for most
#: answers, so rate-limit reservations and worst-case costs are not wildly low.
DEFAULT_MAX_OUTPUT_TOKENS = 1024
#: Request params that cap the answer, the newer name first (it wins when both are given).
_OUTPUT_LIMIT_PARAMS = ("max_completion_tokens", "max_tokens")


def reserved_output_tokens(catalog: "Catalog", model: str, params: Mapping[str, Any]) -> int:
    """The most output tokens a call of ``model`` with ``params`` can use.

    The call's own limit (a positive integer ``max_completion_tokens``, else ``max_tokens``),
    else the catalog's ``max_output_tokens`` for the model, else ``DEFAULT_MAX_OUTPUT_TOKENS``.
    Rate-limit reservations, worst-case costs and context-window checks all count this.
    """
    for key in _OUTPUT_LIMIT_PARAMS:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    spec = catalog.get(model)
    if spec is not None and spec.max_output_tokens:
        return spec.max_output_tokens
    return DEFAULT_MAX_OUTPUT_TOKENS
