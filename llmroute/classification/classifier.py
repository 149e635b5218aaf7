"""Keyword task classifier: label a prompt as code, math, summarization, ... from its text alone.

No model and no network: weighted keyword tables per language (``keywords/*.json``, Latin
words matched whole, CJK phrases as substrings) plus structural cues that keywords miss (code
fences, ``def``, stack traces, equations, LaTeX, numbers). The instruction part of a prompt
weighs more than a pasted passage (see ``_prompt``). Requests with tools are
``function_calling``; prompts past a token threshold are ``long_context`` (``text_task`` still
says what the text alone looks like). Custom tasks (``tasks=``) add string labels.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _scoring
from ._loading import UserTables, build_tables, read_user_tables
from ._prompt import read_prompt
from ._tables import Table, Tables
from .labels import REQUEST_LABELS, TASK_LABELS, Label, TaskType
from ..tokens import MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS, estimate_tokens

__all__ = ["TaskType", "TASK_LABELS", "Classification", "Classifier", "classify",
           "DEFAULT_LONG_CONTEXT_TOKENS"]

#: Prompts at or above this many estimated tokens are long_context: past ~32K tokens only
#: long-window models stay sensible choices, whatever the task.
DEFAULT_LONG_CONTEXT_TOKENS = 32_000

_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def _label_value(label: Label) -> str:
    return label.value if isinstance(label, TaskType) else label


@dataclass(frozen=True, repr=False)
class Classification:
    """The verdict: ``task``, a ``confidence`` in [0, 1], per-label ``scores`` and the cues
    that fired (``matched``, strongest first). ``text_task`` is the label from the text alone,
    which differs from ``task`` when tools or the prompt's length decided. ``task`` is a
    ``TaskType`` for the built-in tasks and a ``str`` for a custom one; ``label`` is always
    the string."""

    task: Label
    confidence: float
    scores: Mapping[str, float] = field(hash=False)
    matched: Tuple[str, ...] = ()
    text_task: Label = TaskType.GENERAL

    @property
    def label(self) -> str:
        """``task`` as its label string ("code", "translation")."""
        return _label_value(self.task)

    @property
    def text_label(self) -> str:
        """``text_task`` as its label string."""
        return _label_value(self.text_task)

    def __repr__(self) -> str:
        top = ", ".join("%s=%.2f" % kv for kv in sorted(self.scores.items(), key=lambda kv: -kv[1])
                        [:3] if kv[1])
        return "Classification(task=%r, confidence=%.2f, text_task=%r, scores={%s}, matched=%r)" % (
            self.label, self.confidence, self.text_label, top, self.matched[:5])

    def explain(self) -> str:
        """One line for logs: task, confidence and the strongest cues."""
        cues = ", ".join(self.matched[:6]) or "no cues"
        via = "" if self.text_label == self.label else " (text: %s)" % self.text_label
        return "%s%s %.2f: %s" % (self.label, via, self.confidence, cues)


class Classifier:
    """A keyword classifier with its own tables; immutable once built, shared by threads.

    ``extra_keywords`` (``{"code": {"terraform": 2.0}}``) and ``keywords_file`` (a JSON table)
    add or re-weight cues without editing the package; ``use_default_tables=False`` keeps only
    yours. ``tasks`` (``{"translation": {"en": {"translate": 3.0}, "ko": {"번역": 3.0}}}``) or
    ``tasks_file`` (the same as JSON) add custom task labels with their cues, in any of the
    four languages. ``long_context_tokens`` is the estimated prompt size from which a request
    counts as long_context. Everything given is validated here (``ValueError`` for bad tables,
    labels or a threshold below 1); the tables are compiled on the first classification.
    """

    def __init__(self, extra_keywords: Optional[Mapping[str, Mapping[str, float]]] = None,
                 keywords_file: Optional[str] = None,
                 long_context_tokens: int = DEFAULT_LONG_CONTEXT_TOKENS,
                 use_default_tables: bool = True, *,
                 tasks: Optional[Mapping[str, Any]] = None,
                 tasks_file: Optional[str] = None) -> None:
        if isinstance(long_context_tokens, bool) or not isinstance(long_context_tokens, int) \
                or long_context_tokens < 1:
            raise ValueError("long_context_tokens must be a positive integer, got %r"
                             % (long_context_tokens,))
        if not isinstance(use_default_tables, bool):
            raise ValueError("use_default_tables must be True or False, got %r"
                             % (use_default_tables,))
        self._long_context_tokens = long_context_tokens
        self._use_default_tables = use_default_tables
        self._user: UserTables = read_user_tables(extra_keywords, keywords_file, tasks,
                                                  tasks_file)
        self._labels = self._user.labels
        self._tables: Optional[Tables] = None
        self._latin_tables: List[Table] = []
        self._compile_lock = threading.Lock()  # guards the one-time compile of _tables

    @property
    def long_context_tokens(self) -> int:
        return self._long_context_tokens

    @property
    def labels(self) -> Tuple[str, ...]:
        """Every label this classifier can give: the built-in ones, then the custom ones."""
        return TASK_LABELS + self._user.custom_labels

    @property
    def custom_labels(self) -> Tuple[str, ...]:
        """The custom tasks' labels, in the order given."""
        return self._user.custom_labels

    def __repr__(self) -> str:
        custom = ", custom_tasks=%s" % list(self.custom_labels) if self.custom_labels else ""
        return "Classifier(long_context_tokens=%d%s)" % (self._long_context_tokens, custom)

    def _compiled(self) -> Tables:
        """The tables, compiled on first use; once, whichever thread gets here first."""
        tables = self._tables
        if tables is None:
            with self._compile_lock:
                tables = self._tables
                if tables is None:
                    tables = build_tables(self._user, self._use_default_tables)
                    self._latin_tables = [t for t in tables.by_lang.values()
                                          if t.script == "latin"]
                    self._tables = tables
        return tables

    def classify(self, text: Optional[str] = None, *, tools: Optional[Sequence[Any]] = None,
                 messages: Optional[Sequence[Mapping[str, Any]]] = None) -> Classification:
        """Classify ``text``, or the last user message of ``messages`` (tokens are estimated
        over all messages then). Raises ``ValueError`` when there is nothing to classify."""
        if messages is not None:
            if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
                raise ValueError("messages must be a list of chat messages")
            if text is None:
                text = _last_user_text(messages)
        elif text is None:
            raise ValueError("classify() needs text or messages")
        if not isinstance(text, str):
            raise ValueError("text must be a string, got %s" % type(text).__name__)
        tokens = self._long_tokens(text if messages is None else messages)
        scores, matched = self._score(text)
        ranked = _scoring.rank(scores, self._labels)
        text_task = _as_label(ranked[0][0])
        confidence = _scoring.confidence(ranked)
        task: Label = text_task
        all_scores: Dict[str, float] = {k: round(v, 3) for k, v in scores.items()}
        all_scores[REQUEST_LABELS[0]] = 1.0 if tools else 0.0
        all_scores[REQUEST_LABELS[1]] = 1.0 if tokens else 0.0
        # Tools decide first: a tool call needs a tool-capable route whatever the length;
        # the router still checks the window against the estimate.
        if tools:
            task, confidence = TaskType.FUNCTION_CALLING, 1.0
            matched = ("function_calling:tools",) + matched
        elif tokens:
            task, confidence = TaskType.LONG_CONTEXT, 1.0
            matched = ("long_context:%d_tokens" % tokens,) + matched
        return Classification(task=task, confidence=round(confidence, 3),
                              scores=MappingProxyType(all_scores), matched=matched,
                              text_task=text_task)

    def _long_tokens(self, prompt: Any) -> int:
        """The estimated tokens when they reach the long-context threshold, else 0.

        The estimate never exceeds the character count (plus message framing), so shorter
        prompts skip the estimate, which costs more than classifying a long CJK text."""
        if isinstance(prompt, str):
            bound = len(prompt)
        else:
            bound = REQUEST_OVERHEAD_TOKENS + sum(
                MESSAGE_OVERHEAD_TOKENS + len(str(m.get("content") or ""))
                + len(str(m.get("tool_calls") or "")) for m in prompt if isinstance(m, Mapping))
        if bound < self._long_context_tokens:
            return 0
        tokens = estimate_tokens(prompt)
        return tokens if tokens >= self._long_context_tokens else 0

    def _score(self, text: str) -> Tuple[Dict[str, float], Tuple[str, ...]]:
        """Per-label scores of ``text`` and the cues that fired, strongest first."""
        tables = self._compiled()
        evidence = _scoring.Evidence(read_prompt(text))
        for table in self._active_tables(text):
            _scoring.match_table(table, evidence)
        _scoring.note_structure(tables, evidence)
        _scoring.note_prompt_shape(evidence)
        return _scoring.combine(evidence, self._labels), evidence.matched()

    def _active_tables(self, text: str) -> List[Table]:
        """Latin tables always; a CJK table only when its script is in the text (Chinese
        tables stay off in Japanese text, whose kanji would otherwise read as Chinese)."""
        if text.isascii():  # O(1): no CJK table can match
            return self._latin_tables
        hangul = _HANGUL.search(text) is not None
        first_kana = _KANA.search(text)
        kana = first_kana is not None and _KANA.search(text, first_kana.end()) is not None
        han = _HAN.search(text) is not None
        latin = _ASCII_LETTER.search(text) is not None
        active = []
        for lang, table in self._compiled().by_lang.items():
            if table.script == "latin":
                if latin:
                    active.append(table)
            elif lang == "ko":
                if hangul:
                    active.append(table)
            elif lang == "ja":
                if kana:
                    active.append(table)
            elif lang == "zh":
                if han and not kana:
                    active.append(table)
            elif hangul or kana or han:
                active.append(table)
        return active


def _as_label(label: str) -> Label:
    """A built-in label as its TaskType, a custom one as the string."""
    return TaskType(label) if label in TASK_LABELS else label


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (string content or OpenAI content parts)."""
    for message in reversed(messages):
        if not isinstance(message, Mapping):
            raise ValueError("each message must be a mapping with 'role' and 'content'")
        if message.get("role") == "user":
            content = message.get("content")
            if content is None:
                return ""
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(str(p.get("text", "")) for p in content
                                 if isinstance(p, Mapping) and p.get("type", "text") == "text")
            return str(content)
    raise ValueError("messages hold no user message to classify")


_DEFAULT: Optional[Classifier] = None
_DEFAULT_LOCK = threading.Lock()  # guards the one-time build of _DEFAULT


def _default_classifier() -> Classifier:
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = Classifier()
    return _DEFAULT


def classify(text: Optional[str] = None, *, tools: Optional[Sequence[Any]] = None,
             messages: Optional[Sequence[Mapping[str, Any]]] = None) -> Classification:
    """Classify with the default tables (loaded on first use); see :meth:`Classifier.classify`."""
    return _default_classifier().classify(text, tools=tools, messages=messages)
