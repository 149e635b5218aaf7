"""Named task presets: request parameters the comparison recommends per kind of task.

The figures are COMPARISON.md's "Task presets" table, minus its ``model`` column: which model
serves a task is the router's business (``routes.py``). ``get(name)`` returns a read-only
mapping that is a deep copy, so no caller can change a preset for everyone else; pass it as
``**presets.get("code_gen")`` to ``Client.chat`` or use it as a route's ``"preset"``.
"""
from __future__ import annotations

import copy
from types import MappingProxyType
from typing import Any, Dict, Mapping, Tuple

__all__ = ["get", "names", "PRESETS"]

_PRESETS: Dict[str, Dict[str, Any]] = {
    # Document review: stop at the document separators the comparison's prompts use.
    "document_analysis": {"max_tokens": 4096, "temperature": 0.3, "top_p": 0.95,
                          "stop": ["\n\n---", "END OF DOCUMENT"]},
    "json_reliable": {"max_tokens": 2048, "temperature": 0.1, "top_p": 0.99,
                      "response_format": {"type": "json_object"}},
    # ``thinking`` is an Anthropic extension; the router sends it only to models whose
    # catalog features include "thinking".
    "reasoning": {"max_tokens": 8192, "temperature": 0.4, "top_p": 0.95,
                  "thinking": {"type": "enabled", "budget_tokens": 4096}},
    # The caller supplies ``tools``; the preset only says how the model may use them.
    "function_calling": {"max_tokens": 1024, "temperature": 0.1, "top_p": 0.95,
                         "tool_choice": "auto"},
    "code_gen": {"max_tokens": 4096, "temperature": 0.2, "top_p": 0.95,
                 "presence_penalty": 0.1, "frequency_penalty": 0.2},
    "chat": {"max_tokens": 2048, "temperature": 0.7, "top_p": 0.95,
             "presence_penalty": 0.0, "frequency_penalty": 0.0},
}

#: Every preset, read-only at the top (use ``get`` for a copy you may change). Built from a
#: copy, so a caller changing a nested value here cannot change what ``get`` and routes give.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {name: MappingProxyType(copy.deepcopy(params)) for name, params in _PRESETS.items()})


def names() -> Tuple[str, ...]:
    """The preset names, in the comparison's order."""
    return tuple(_PRESETS)


def get(name: str) -> Mapping[str, Any]:
    """A read-only deep copy of preset ``name``; an unknown name raises ``ValueError``."""
    try:
        params = _PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError("unknown preset %r; known presets: %s"
                         % (name, ", ".join(_PRESETS))) from None
    return MappingProxyType(copy.deepcopy(params))
