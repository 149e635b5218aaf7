"""Token estimates without a tokenizer: good enough to reserve rate limits and fit windows.

The heuristic: CJK characters (Han, Kana, Hangul) count one token each, because BPE
vocabularies split them about that finely; every other run of text counts about one token per
four characters, but never fewer than one per word; each chat message adds a few tokens of
framing (role, separators). It errs slightly high, which is the safe side for both uses.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, List, Mapping, Sequence, Union

from . import _checks as checks

__all__ = ["estimate_tokens", "fit_messages", "MESSAGE_OVERHEAD_TOKENS"]

#: Tokens a chat message costs beyond its text (role marker and separators), as OpenAI documents.
MESSAGE_OVERHEAD_TOKENS = 4
#: Tokens every request costs once (the assistant's reply primer).
REQUEST_OVERHEAD_TOKENS = 3
#: Latin-script characters per token for English-like text.
CHARS_PER_TOKEN = 4.0

_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
                  r"\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]")
_WORD = re.compile(r"\S+")

Messages = Sequence[Mapping[str, Any]]


def _text_tokens(text: str) -> int:
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    if cjk:
        text = _CJK.sub(" ", text)
    rest = len(text) - text.count(" ")
    words = len(_WORD.findall(text))
    return cjk + max(words, int(rest / CHARS_PER_TOKEN + 0.999))


def _content_text(content: Any) -> str:
    """The text of a message's content: a string or a list of OpenAI content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)


def _message_tokens(message: Mapping[str, Any]) -> int:
    tokens = MESSAGE_OVERHEAD_TOKENS + _text_tokens(_content_text(message.get("content")))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, (list, tuple)) else ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        tokens += _text_tokens(str(function.get("name", ""))) + _text_tokens(
            str(function.get("arguments", "")))
    return tokens


class _NotMessagesError(ValueError, TypeError):
    """Not a str or a list of message dicts. A ValueError, as every bad argument is; also a
    TypeError because callers written before this check caught that."""


def _checked_messages(value: Any, name: str) -> Sequence[Mapping[str, Any]]:
    """``value`` as a list or tuple of message dicts, else ValueError naming ``name``."""
    if not isinstance(value, (list, tuple)):
        raise _NotMessagesError("%s must be a str or a list of message dicts, got %s"
                         % (name, type(value).__name__))
    for index, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise _NotMessagesError("%s[%d] must be a message dict like {'role': 'user', 'content': "
                             "'...'}, got %s" % (name, index, type(message).__name__))
    return value


def estimate_tokens(text_or_messages: Union[str, Messages, None]) -> int:
    """Estimate the prompt tokens of a string, or of a list (or tuple) of chat message dicts.

    A string is counted as bare text; a list counts each message's content, tool calls and
    framing. ``None`` is 0. Anything else (bytes, a list of strings) raises ValueError.
    """
    if text_or_messages is None:
        return 0
    if isinstance(text_or_messages, str):
        return _text_tokens(text_or_messages)
    messages = _checked_messages(text_or_messages, "text_or_messages")
    return REQUEST_OVERHEAD_TOKENS + sum(_message_tokens(m) for m in messages)


def fit_messages(messages: Messages, *, context_window: int, max_tokens: int,
                 margin: float = 0.10) -> List[Mapping[str, Any]]:
    """Drop the oldest non-system turns until the estimate plus ``max_tokens`` fits the window.

    The window is shrunk by ``margin`` (10% by default) because the estimate is a heuristic.
    System messages and the last message are always kept; raises ``ValueError`` when even
    those do not fit, since no trimming can help then.
    """
    messages = _checked_messages(messages, "messages")
    context_window = checks.number("context_window", context_window, minimum=1, integer=True)
    max_tokens = checks.number("max_tokens", max_tokens, minimum=0, integer=True)
    margin = checks.number("margin", margin, minimum=0)
    if margin >= 1:
        raise ValueError("margin must be < 1 (a share of the window), got %r" % (margin,))
    budget = int(context_window * (1 - margin)) - max_tokens
    kept = list(messages)
    droppable = [i for i, m in enumerate(kept[:-1]) if m.get("role") != "system"]
    total = estimate_tokens(kept)
    costs = {i: _message_tokens(kept[i]) for i in droppable}
    dropped = set()
    for i in droppable:
        if total <= budget:
            break
        # An assistant turn's tool results go with it: never leave a tool message orphaned.
        dropped.add(i)
        total -= costs[i]
    while droppable and kept and any(
            kept[j].get("role") == "tool" and j not in dropped and _orphaned(kept, j, dropped)
            for j in droppable):
        for j in droppable:
            if kept[j].get("role") == "tool" and j not in dropped and _orphaned(kept, j, dropped):
                dropped.add(j)
                total -= costs[j]
    if total > budget:
        raise ValueError(
            "messages need about %d tokens but the window leaves %d after max_tokens=%d; "
            "the system prompt and last message alone do not fit" % (total, budget, max_tokens))
    return [m for i, m in enumerate(kept) if i not in dropped]


def _orphaned(messages: List[Mapping[str, Any]], index: int, dropped: Iterable[int]) -> bool:
    """A tool message whose assistant tool-call turn was dropped."""
    dropped = set(dropped)
    for j in range(index - 1, -1, -1):
        if messages[j].get("role") == "assistant":
            return j in dropped
    return False
