"""Token estimates without a tokenizer: good enough to reserve rate limits and fit windows.

The heuristic: CJK characters (Han, Kana, Hangul) count one token each, because BPE
vocabularies split them about that finely; every other run of text counts about one token per
four characters, but never fewer than one per word; each chat message adds a few tokens of
framing (role, separators). It errs slightly high, which is the safe side for both uses.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Union

from . import _checks as checks
from ._lazy import LazyPattern

__all__ = ["estimate_tokens", "fit_messages", "MESSAGE_OVERHEAD_TOKENS"]

#: Tokens a chat message costs beyond its text (role marker and separators), as OpenAI documents.
MESSAGE_OVERHEAD_TOKENS = 4
#: Tokens every request costs once (the assistant's reply primer).
REQUEST_OVERHEAD_TOKENS = 3
#: Latin-script characters per token for English-like text.
CHARS_PER_TOKEN = 4.0

#: Han, Kana, Hangul (jamo, syllables, compatibility), CJK compatibility and half-width Kana.
_CJK_CLASS = (r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
              r"\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]")
#: Compiled on first use: compiling the class costs about 2 ms that ``import llmroute`` skips.
_CJK = LazyPattern(_CJK_CLASS)
_WORD = LazyPattern(r"\S+")

Messages = Sequence[Mapping[str, Any]]


def _text_tokens(text: str) -> int:
    if not text:
        return 0
    text, cjk = _CJK.subn(" ", text)
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
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue  # not a function call: nothing of it is sent as text we can count
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
    System messages and the last message are always kept. An assistant turn is dropped with
    the tool results that follow it, so no tool message loses the call it answers; when the
    last message is a tool result, its turn stays too. Raises ``ValueError`` when what must
    stay does not fit, since no trimming can help then. Linear in the number of messages.
    """
    messages = _checked_messages(messages, "messages")
    context_window = checks.number("context_window", context_window, minimum=1, integer=True)
    max_tokens = checks.number("max_tokens", max_tokens, minimum=0, integer=True)
    margin = checks.number("margin", margin, minimum=0)
    if margin >= 1:
        raise ValueError("margin must be < 1 (a share of the window), got %r" % (margin,))
    budget = int(context_window * (1 - margin)) - max_tokens
    costs = [_message_tokens(m) for m in messages]
    total = REQUEST_OVERHEAD_TOKENS + sum(costs)
    results = _tool_results(messages)
    # The last message stays; when it is a tool result, so do its assistant turn and siblings.
    keep = _turn_of(messages, results, len(messages) - 1) if messages else set()
    dropped: Set[int] = set()
    for i, message in enumerate(messages):
        if total <= budget:
            break
        if i in keep or i in dropped or message.get("role") == "system":
            continue
        # An assistant turn's tool results go with it: never leave a tool message orphaned.
        for j in (i, *results.get(i, ())):
            dropped.add(j)
            total -= costs[j]
    if total > budget:
        raise ValueError(
            "messages need about %d tokens but the window leaves %d after max_tokens=%d; "
            "the system messages and the last message (with the tool-call turn it answers) "
            "alone do not fit" % (total, budget, max_tokens))
    return [m for i, m in enumerate(messages) if i not in dropped]


def _tool_results(messages: Messages) -> Dict[int, List[int]]:
    """Index of each assistant turn -> indices of the tool messages after it, up to the next
    assistant turn (the results of its tool calls), in one pass."""
    results: Dict[int, List[int]] = {}
    assistant: Optional[int] = None
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            assistant = i
        elif role == "tool" and assistant is not None:
            results.setdefault(assistant, []).append(i)
    return results


def _turn_of(messages: Messages, results: Mapping[int, List[int]], index: int) -> Set[int]:
    """``index`` plus, for a tool message, the assistant turn it answers and that turn's other
    tool results: what must stay together with the message at ``index``."""
    if messages[index].get("role") == "tool":
        for j in range(index - 1, -1, -1):
            if messages[j].get("role") == "assistant":
                return {index, j, *results[j]}
    return {index}
