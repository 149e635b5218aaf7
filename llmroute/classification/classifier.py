"""Keyword task classifier: label a prompt as code, math, summarization, ... from its text alone.

No model and no network: weighted keyword tables per language (``data/keywords/*.json``, Latin
words matched whole, CJK phrases as substrings) plus structural cues that keywords miss (code
fences, ``def``, stack traces, equations, LaTeX, numbers). The instruction part of a prompt (its
first paragraph and its closing line) weighs more than a pasted passage, so "summarize this
code review" is summarization and a story *about* a mathematician is creative writing.
Requests with tools are ``function_calling``; prompts past a token threshold are
``long_context`` (``text_task`` still says what the text alone looks like).
"""
from __future__ import annotations

import enum
import math
import re
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._tables import (TEXT_LABELS, WORD_CHARS, Table, Tables, load_tables, search,
                        structural_cues)
from ..tokens import MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS, estimate_tokens

__all__ = ["TaskType", "Classification", "Classifier", "classify",
           "DEFAULT_LONG_CONTEXT_TOKENS"]

#: Prompts at or above this many estimated tokens are long_context: past ~32K tokens only
#: long-window models stay sensible choices, whatever the task.
DEFAULT_LONG_CONTEXT_TOKENS = 32_000


class TaskType(str, enum.Enum):
    """What a prompt asks for; the value is the label string used in tables and reports."""

    CODE = "code"
    MATH = "math"
    SUMMARIZATION = "summarization"
    CREATIVE_WRITING = "creative_writing"
    EXTRACTION = "extraction"
    GENERAL = "general"
    FUNCTION_CALLING = "function_calling"
    LONG_CONTEXT = "long_context"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, repr=False)
class Classification:
    """The verdict: ``task``, a ``confidence`` in [0, 1], per-label ``scores`` and the cues
    that fired (``matched``, strongest first). ``text_task`` is the label from the text alone,
    which differs from ``task`` when tools or the prompt's length decided."""

    task: TaskType
    confidence: float
    scores: Mapping[str, float] = field(hash=False)
    matched: Tuple[str, ...] = ()
    text_task: TaskType = TaskType.GENERAL

    def __repr__(self) -> str:
        top = ", ".join("%s=%.2f" % kv for kv in sorted(self.scores.items(), key=lambda kv: -kv[1])
                        [:3] if kv[1])
        return "Classification(task=%r, confidence=%.2f, text_task=%r, scores={%s}, matched=%r)" % (
            self.task.value, self.confidence, self.text_task.value, top, self.matched[:5])

    def explain(self) -> str:
        """One line for logs: task, confidence and the strongest cues."""
        cues = ", ".join(self.matched[:6]) or "no cues"
        via = "" if self.text_task is self.task else " (text: %s)" % self.text_task.value
        return "%s%s %.2f: %s" % (self.task.value, via, self.confidence, cues)


# -- tuning constants (chosen on half of the dev set, checked on the other half) ------------

#: A single-paragraph prompt this short is all instruction.
_SHORT_PROMPT_CHARS = 300
#: The first paragraph/line counts as instruction when at most this long.
_HEAD_MAX_CHARS = 500
#: The closing line/paragraph counts as instruction (a question after a passage) when this short.
_TAIL_MAX_CHARS = 200
#: Weight of a keyword found in a long pasted passage, relative to the instruction ...
_PASSAGE_FACTOR = 0.3
#: ... and in a short one (a few words after "Build a plot around this:" still steer).
_SHORT_PASSAGE_FACTOR = 0.6
_SHORT_PASSAGE_CHARS = 200
#: Evidence from the passage and from structure (code, formulas) adds up to at most this much
#: per label, so an explicit instruction ("summarize this log") outweighs what is pasted.
_CONTENT_CAP = 4.0
#: Extraction needs something to extract from: without a passage its cues count this much.
_NO_PASSAGE_EXTRACTION = 0.5
_MIN_PASSAGE_CHARS = 20
#: The score "general" starts with: weaker evidence than this is no evidence.
_GENERAL_BASE = 1.2
_GENERAL_BASE_WITH_PASSAGE = 0.5
#: A negated cue ("don't summarize") counts this fraction of its weight against its label.
_NEGATED_FACTOR = -0.6
#: Each further cue of a label counts this much less than the one before (diminishing returns).
_DECAY = 0.8
#: A quantity question ("how many", "多少") over at least this many numbers is a word problem.
_WORD_PROBLEM_NUMBERS = 3
_WORD_PROBLEM_WEIGHT = 1.5
#: A prompt that opens with code is about that code whatever its docstring says.
_OPENS_WITH_CODE = 2.0
#: A question asked about a pasted passage leans to extraction (reading comprehension) ...
_QUESTION_PASSAGE_CHARS = 80
_QUESTION_ON_PASSAGE = 1.5
#: ... and a short question over two or more numbers leans to math.
_NUMERIC_QUESTION = 1.5
#: Scale of the score margin in the confidence: margin 2 ~ 0.63, margin 5 ~ 0.92.
_CONFIDENCE_SCALE = 2.0

# -- scripts, sentences, numbers -------------------------------------------------------------

_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_HEAD_BREAK = re.compile(r"(?<![0-9])[:](?=\s)|：|[.?!](?=\s)|[。？！]")
_SENTENCE_END = re.compile(r"[.?!](?=\s)|[。？！\n]")
# Numbers: digits not glued to a Latin word ("x2", "v1.3"), checked in Python.
# (At most 8 groups: "1.2.3.4..." as one unbounded match costs the regex engine dearly; the
# rest of such a run starts after a "." and is not counted again.)
_DIGITS = re.compile(r"[0-9]+(?:[.,][0-9]+){0,8}")
_LETTERS_DOT = WORD_CHARS | {"."}
_NUMBER_WORDS = re.compile(r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                           r"twenty|thirty|forty|fifty|hundred|thousand|half|twice|double|triple|"
                           r"dozen)\b", re.ASCII)
#: A prompt that opens with code (HumanEval-style) is all content, no instruction.
_CODE_START = re.compile(r"(?:def |class |import |from [\w.]+ import |#include|function |"
                         r"public |package |using |SELECT |<!DOCTYPE|<html|//|/\*|#!)")
#: A closing line is instruction only when it reads like one: a question, a colon before
#: what follows, a request word or a pointer back to the text; else it ends the passage.
_TAIL_ASKS = re.compile(r"[?？:：]\s*$|以上|上文|上述|上面|下面|上記|위의|위 글|위 내용|위 대화|"
                        r"\b(?:above|preceding|foregoing|please|summari[sz]e|extract|list|write)\b|"
                        r"请|請|帮我|ください|下さい|して$|주세요|하세요|해줘|해 줘")
_COLON = re.compile(r"(?<![0-9])[:](?=\s)|：")

# -- instruction / passage split -----------------------------------------------------------------

def _split(text: str) -> Tuple[int, int]:
    """(head_end, tail_start): ``text[:head_end]`` and ``text[tail_start:]`` are the
    instruction, what lies between is the pasted passage (empty for a short question)."""
    n = len(text)
    start = n - len(text.lstrip())
    end = len(text.rstrip())
    if start >= end:
        return n, n
    if _CODE_START.match(text, start):
        return start, end
    para = text.find("\n\n", start, start + _HEAD_MAX_CHARS + 1)
    if para > start and end - para > _MIN_PASSAGE_CHARS:
        tail_start = end
        last = text.rfind("\n\n", para + 2, end)
        if last > para and end - last <= _TAIL_MAX_CHARS and _TAIL_ASKS.search(text, last, end):
            tail_start = last + 2
        return para, tail_start
    if end - start <= _SHORT_PROMPT_CHARS:
        # "Summarize this dialogue: ..." -- an instruction line that ends in a colon.
        m = _COLON.search(text, start, min(end, start + 150))
        if m is not None and m.start() - start >= 8 and end - m.end() >= 15:
            return m.end(), end
        return n, n
    line = text.find("\n", start, start + _HEAD_MAX_CHARS + 1)
    if line > start:
        head_end = line
    else:
        m = _HEAD_BREAK.search(text, start, start + _HEAD_MAX_CHARS)
        head_end = m.end() if m else start + 200
    tail_start = end
    last_line = text.rfind("\n", head_end, end)
    if last_line >= head_end and end - last_line <= _TAIL_MAX_CHARS:
        candidate = last_line + 1
    else:
        candidate = end
        for m in _SENTENCE_END.finditer(text, max(head_end, end - _TAIL_MAX_CHARS), end - 1):
            candidate = m.end()
    if candidate < end and _TAIL_ASKS.search(text, candidate, end):
        tail_start = candidate
    return head_end, max(tail_start, head_end)


# -- the classifier ----------------------------------------------------------------------------

class Classifier:
    """A keyword classifier with its own tables; immutable once built, shared by threads.

    ``extra_keywords`` (``{"code": {"terraform": 2.0}}``) and ``keywords_file`` (a JSON table)
    add or re-weight cues without editing the package; ``use_default_tables=False`` keeps only
    yours. ``long_context_tokens`` is the estimated prompt size from which a request counts as
    long_context. Raises ``ValueError`` for bad tables or a threshold below 1.
    """

    def __init__(self, extra_keywords: Optional[Mapping[str, Mapping[str, float]]] = None,
                 keywords_file: Optional[str] = None,
                 long_context_tokens: int = DEFAULT_LONG_CONTEXT_TOKENS,
                 use_default_tables: bool = True) -> None:
        if isinstance(long_context_tokens, bool) or not isinstance(long_context_tokens, int) \
                or long_context_tokens < 1:
            raise ValueError("long_context_tokens must be a positive integer, got %r"
                             % (long_context_tokens,))
        self._long_context_tokens = long_context_tokens
        self._tables: Tables = load_tables(extra_keywords, keywords_file, use_default_tables)
        self._latin_tables = [t for t in self._tables.by_lang.values() if t.script == "latin"]

    @property
    def long_context_tokens(self) -> int:
        return self._long_context_tokens

    def __repr__(self) -> str:
        return "Classifier(languages=%s, long_context_tokens=%d)" % (
            sorted(self._tables.by_lang), self._long_context_tokens)

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
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], TEXT_LABELS.index(kv[0])))
        text_task = TaskType(ranked[0][0])
        margin = ranked[0][1] - ranked[1][1]
        confidence = 1.0 - math.exp(-margin / _CONFIDENCE_SCALE)
        task = text_task
        all_scores: Dict[str, float] = {k: round(v, 3) for k, v in scores.items()}
        all_scores["function_calling"] = 1.0 if tools else 0.0
        all_scores["long_context"] = 1.0 if tokens else 0.0
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

    # -- scoring -------------------------------------------------------------------------------

    def _score(self, text: str) -> Tuple[Dict[str, float], Tuple[str, ...]]:
        low = _lower(text)
        head_end, tail_start = _split(low)
        passage = tail_start - head_end
        passage_factor = _SHORT_PASSAGE_FACTOR if passage < _SHORT_PASSAGE_CHARS \
            else _PASSAGE_FACTOR
        numbers, inst_numbers = _count_numbers(low, head_end, tail_start)
        # cue name -> (label, value, from the instruction?)
        best: Dict[str, Tuple[str, float, bool]] = {}

        def note(label: str, name: str, value: float, pos: int, scale: bool = True,
                 inst: Optional[bool] = None) -> None:
            if inst is None:
                inst = pos < head_end or pos >= tail_start
            if scale and not inst:
                value *= passage_factor
            old = best.get(name)
            if old is None or abs(value) > abs(old[1]) or (value < 0 < old[1]):
                best[name] = (label, value, inst)

        quantity_question = False
        # Keywords are looked for in the instruction and in a short passage; a long passage
        # only feeds the structural cues (its words barely moved any score, and skipping them
        # keeps a 2,000-character prompt well under a millisecond).
        if passage < _SHORT_PASSAGE_CHARS:
            regions = ((0, len(low)),)
        else:
            regions = tuple(r for r in ((0, head_end), (tail_start, len(low))) if r[0] < r[1])
        for table in self._active_tables(text):
            positions: Dict[str, List[int]] = {}
            latin = table.script == "latin"
            if table.literal_re is not None:
                for a, b in regions:
                    for m in table.literal_re.finditer(low, a, b):
                        start = m.start()
                        if latin and start and low[start - 1] in WORD_CHARS:
                            continue
                        word = m.group()
                        cues = table.lookup(word)
                        if cues is None:
                            continue
                        positions.setdefault(word, []).append(start)
                        for cue in cues:
                            value = cue.weight * _needs(cue.needs, numbers)
                            if not value:
                                continue
                            if cue.needs and (start < head_end or start >= tail_start):
                                quantity_question = True
                            if table.negated(low, start, m.end()):
                                note(cue.label, cue.name + ":negated", value * _NEGATED_FACTOR,
                                     start)
                            else:
                                note(cue.label, cue.name, value, start)
            for pattern, cue, bounded in table.patterns:
                m = None
                for a, b in regions:
                    m = search(pattern, low, a, b, bounded)
                    if m is not None:
                        break
                if m is not None:
                    value = cue.weight * _needs(cue.needs, numbers)
                    if value:
                        note(cue.label, cue.name, value, m.start())
                        if cue.needs and (m.start() < head_end or m.start() >= tail_start):
                            quantity_question = True
            for combo in table.combos:
                pos = table.combo_position(combo, positions)
                if pos is not None:
                    note(combo.cue.label, combo.cue.name, combo.cue.weight, pos)
        for label, name, weight, pos in structural_cues(self._tables, text):
            note(label, name, weight, pos, scale=False)
        start = len(low) - len(low.lstrip())
        if _CODE_START.match(low, start) or _CODE_START.match(text, start):
            note("code", "code:opens_with_code", _OPENS_WITH_CODE, 0, inst=True)
        asks = any(q in low[:head_end] or q in low[tail_start:] for q in ("?", "？"))
        if asks and passage >= _QUESTION_PASSAGE_CHARS:
            note("extraction", "extraction:question_on_passage", _QUESTION_ON_PASSAGE, 0,
                 inst=True)
        elif asks and passage < _MIN_PASSAGE_CHARS and inst_numbers >= 2:
            note("math", "math:numeric_question", _NUMERIC_QUESTION, 0, inst=True)
        if quantity_question and numbers >= _WORD_PROBLEM_NUMBERS:
            note("math", "math:word_problem", _WORD_PROBLEM_WEIGHT, 0, inst=True)

        inst_values: Dict[str, List[float]] = {label: [] for label in TEXT_LABELS}
        content_values: Dict[str, List[float]] = {label: [] for label in TEXT_LABELS}
        negative: Dict[str, float] = {label: 0.0 for label in TEXT_LABELS}
        for label, value, inst in best.values():
            if value < 0:
                negative[label] += value
            elif inst:
                if label == "extraction" and passage < _MIN_PASSAGE_CHARS:
                    value *= _NO_PASSAGE_EXTRACTION
                inst_values[label].append(value)
            else:
                content_values[label].append(value)
        scores = {label: _decayed(inst_values[label])
                  + min(_CONTENT_CAP, _decayed(content_values[label])) + negative[label]
                  for label in TEXT_LABELS}
        # A pasted passage is there to be worked on; plain chat rarely comes with one.
        scores["general"] += _GENERAL_BASE if passage < _QUESTION_PASSAGE_CHARS \
            else _GENERAL_BASE_WITH_PASSAGE
        matched = tuple(name for name, _ in sorted(best.items(), key=lambda kv: -abs(kv[1][1])))
        return scores, matched

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
        for lang, table in self._tables.by_lang.items():
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


def _lower(text: str) -> str:
    """``text`` in lower case, position for position (``"İ".lower()`` is two characters)."""
    low = text.lower()
    if len(low) != len(text):
        low = text.replace("\u0130", "i").lower()
        if len(low) != len(text):  # another such character in a later Unicode version
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low


def _count_numbers(low: str, head_end: int, tail_start: int) -> Tuple[int, int]:
    """(numbers in the prompt, numbers in the instruction): digits not glued to a Latin word
    anywhere, English number words in the instruction. The passage is counted only up to
    what the rules ask (``_WORD_PROBLEM_NUMBERS``), so a long table of figures costs little."""
    inst = passage = 0
    pos = 0
    for a, b, limit in ((0, head_end, None), (head_end, tail_start, _WORD_PROBLEM_NUMBERS),
                        (tail_start, len(low), None)):
        found = 0
        pos = max(pos, a)
        if pos < b:
            for m in _DIGITS.finditer(low, pos):
                start = m.start()
                if start >= b:
                    break
                pos = m.end()
                if not start or low[start - 1] not in _LETTERS_DOT:
                    found += 1
                    if limit is not None and found >= limit:
                        break
        if limit is None and a < b:
            found += sum(1 for m in _NUMBER_WORDS.finditer(low, a, b)
                         if not m.start() or low[m.start() - 1] not in WORD_CHARS)
            inst += found
        else:
            passage += found
    return inst + passage, inst


def _decayed(values: List[float]) -> float:
    """Sum with diminishing returns: the strongest cue counts fully, each next one less."""
    values.sort(reverse=True)
    return sum(v * _DECAY ** i for i, v in enumerate(values))


def _needs(needs: Optional[str], numbers: int) -> float:
    if needs is None:
        return 1.0
    return 1.0 if numbers >= 2 else 0.5 if numbers == 1 else 0.0


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
