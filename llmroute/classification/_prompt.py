"""A prompt as the classifier reads it: lower-cased, split into instruction and pasted passage,
its numbers counted.

The instruction part (the first paragraph and a closing question) weighs more than a pasted
passage, so "summarize this code review" is summarization and a story *about* a
mathematician is creative writing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Tuple

from ._tables import WORD_CHARS

__all__ = ["Prompt", "read_prompt", "CODE_START", "MIN_PASSAGE_CHARS", "WORD_PROBLEM_NUMBERS"]

#: Passages up to this long have their CJK characters counted double (see passage_size).
_LATIN_EQUIVALENT_LIMIT = 100
_WIDE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")
#: A single-paragraph prompt this short is all instruction.
_SHORT_PROMPT_CHARS = 300
#: The first paragraph/line counts as instruction when at most this long.
_HEAD_MAX_CHARS = 500
#: The closing line/paragraph counts as instruction (a question after a passage) when this short.
_TAIL_MAX_CHARS = 200
#: A passage shorter than this is no passage (nothing to extract from).
MIN_PASSAGE_CHARS = 20
#: Keywords are looked for in a passage shorter than this too; a longer one only feeds the
#: structural cues (its words barely moved any score, and skipping them keeps a
#: 2,000-character prompt well under a millisecond).
SHORT_PASSAGE_CHARS = 200
#: Numbers in the passage are counted up to this many (what the word-problem rule needs).
WORD_PROBLEM_NUMBERS = 3

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
CODE_START = re.compile(r"(?:def |class |import |from [\w.]+ import |#include|function |"
                         r"public |package |using |SELECT |<!DOCTYPE|<html|//|/\*|#!)")
#: A closing line is instruction only when it reads like one: a question, a colon before
#: what follows, a request word or a pointer back to the text; else it ends the passage.
_TAIL_ASKS = re.compile(r"[?？:：]\s*$|以上|上文|上述|上面|下面|上記|위의|위 글|위 내용|위 대화|"
                        r"\b(?:above|preceding|foregoing|please|summari[sz]e|extract|list|write)\b|"
                        r"请|請|帮我|ください|下さい|して$|주세요|하세요|해줘|해 줘")
#: A paragraph that ends as a question does ("?", "？", "か。", "까?") ...
_QUESTION_END = re.compile(r"[?？]\s*$")
#: ... and one that asks or introduces what follows.
_ASKS_OR_COLON = re.compile(r"[?？:：]")
_COLON = re.compile(r"(?<![0-9])[:](?=\s)|：")



@dataclass(frozen=True)
class Prompt:
    """What the scoring steps read: ``low`` (``text`` lower-cased, position for position),
    the instruction ``low[:head_end]`` + ``low[tail_start:]`` around the passage, the
    ``regions`` to look for keywords in, and the numbers (``numbers`` overall, capped;
    ``instruction_numbers`` in the instruction)."""

    text: str
    low: str
    head_end: int
    tail_start: int
    numbers: int
    instruction_numbers: int
    has_digit: bool = True

    @property
    def passage(self) -> int:
        """Length of the pasted passage (0 for a plain question)."""
        return self.tail_start - self.head_end

    @property
    def passage_size(self) -> int:
        """The passage's length in Latin-letter terms: a CJK character says about as much as
        two Latin ones, so a 45-character Chinese passage weighs like a 90-character English
        one. Counted only for short passages (a long one is long in any script)."""
        passage = self.passage
        if passage >= 2 * _LATIN_EQUIVALENT_LIMIT:
            return passage
        return passage + len(_WIDE.findall(self.low, self.head_end, self.tail_start))

    @property
    def pasted(self) -> bool:
        """Whether the passage is set off from the instruction by a blank line, as a pasted
        text is (a word problem runs on in one paragraph)."""
        if not self.passage:
            return False
        low = self.low
        return low.startswith("\n\n", self.head_end) or (
            self.tail_start >= 2 and low.startswith("\n\n", self.tail_start - 2))

    def in_instruction(self, pos: int) -> bool:
        return pos < self.head_end or pos >= self.tail_start

    @property
    def regions(self) -> Tuple[Tuple[int, int], ...]:
        """Where keywords are looked for: all of a prompt with a short passage, else the
        instruction around a long one."""
        if self.passage < SHORT_PASSAGE_CHARS:
            return ((0, len(self.low)),)
        return tuple(r for r in ((0, self.head_end), (self.tail_start, len(self.low)))
                     if r[0] < r[1])

    @property
    def asks(self) -> bool:
        """Whether the instruction asks a question (has a question mark)."""
        low = self.low
        return any(q in low[:self.head_end] or q in low[self.tail_start:] for q in ("?", "？"))

    @property
    def opens_with_code(self) -> bool:
        start = len(self.low) - len(self.low.lstrip())
        return bool(CODE_START.match(self.low, start) or CODE_START.match(self.text, start))


def read_prompt(text: str) -> Prompt:
    """Lower-case, split and count ``text``; linear in its length."""
    low = _lower(text)
    head_end, tail_start = _split(low)
    numbers, inst, has_digit = _count_numbers(text, low, head_end, tail_start)
    return Prompt(text, low, head_end, tail_start, numbers, inst, has_digit)


def _split(text: str) -> Tuple[int, int]:
    """(head_end, tail_start): ``text[:head_end]`` and ``text[tail_start:]`` are the
    instruction, what lies between is the pasted passage (empty for a short question)."""
    n = len(text)
    start = n - len(text.lstrip())
    end = len(text.rstrip())
    if start >= end:
        return n, n
    if CODE_START.match(text, start):
        return start, end
    para = text.find("\n\n", start, start + _HEAD_MAX_CHARS + 1)
    if para > start and _question_after_passage(text, start, para, end):
        return start, para + 2  # the passage came first, its question after it
    if para > start and end - para > MIN_PASSAGE_CHARS:
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


def _question_after_passage(text: str, start: int, para: int, end: int) -> bool:
    """Whether ``text[start:para]`` is a pasted passage and the one paragraph after it a short
    question about it: the question is much shorter and asks, the passage does not."""
    first, second = para - start, end - para - 2
    return (0 < second <= _TAIL_MAX_CHARS and first >= 2 * second and first >= 60
            and text.find("\n\n", para + 2, end) < 0
            and _QUESTION_END.search(text, para + 2, end) is not None
            and _ASKS_OR_COLON.search(text, start, para) is None)


def _lower(text: str) -> str:
    """``text`` in lower case, position for position (``"İ".lower()`` is two characters)."""
    low = text.lower()
    if len(low) != len(text):
        low = text.replace("\u0130", "i").lower()
        if len(low) != len(text):  # another such character in a later Unicode version
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low


def _count_numbers(text: str, low: str, head_end: int,
                   tail_start: int) -> Tuple[int, int, bool]:
    """(numbers in the prompt, numbers in the instruction, any digit at all): digits not glued to a Latin word
    ("x2", "v1.3") nor part of a name ("5G", "4K", "3D": a capital letter follows) anywhere,
    English number words in the instruction. The passage is counted only up to what the rules
    ask (``WORD_PROBLEM_NUMBERS``), so a long table of figures costs little."""
    inst = passage = 0
    pos = 0
    has_digit = False
    for a, b, limit in ((0, head_end, None), (head_end, tail_start, WORD_PROBLEM_NUMBERS),
                        (tail_start, len(low), None)):
        found = 0
        pos = max(pos, a)
        if pos < b:
            # (up to a little past the region: a number that starts inside it ends there too)
            for m in _DIGITS.finditer(low, pos, min(len(low), b + 64)):
                has_digit = True
                start = m.start()
                if start >= b:
                    break
                pos = m.end()
                if (not start or low[start - 1] not in _LETTERS_DOT) and not (
                        pos < len(text) and "A" <= text[pos] <= "Z"):
                    found += 1
                    if limit is not None and found >= limit:
                        break
        if limit is None and a < b:
            found += sum(1 for m in _NUMBER_WORDS.finditer(low, a, b)
                         if not m.start() or low[m.start() - 1] not in WORD_CHARS)
            inst += found
        else:
            passage += found
    return inst + passage, inst, has_digit
