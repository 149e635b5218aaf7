"""Compiled cue tables for the task classifier and how they match.

Each table's literals compile into one trie-shaped regex, so a scan is one pass; Latin
literals match whole words with an optional plural ``s``/``es``, CJK ones as substrings. The
JSON format they are read from is described in ``_loading.py``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["WORD_CHARS", "Cue", "Combo", "StructuralCue", "Table", "Tables", "search",
           "literal_regex", "word_regex"]

#: ASCII word characters: what may not touch a Latin cue on either side.
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

#: How far before a cue a negator may stand ("I don't need a summary": 10 characters).
_NEGATION_WINDOW = {"latin": 16, "cjk": 8}
_CLAUSE_END = re.compile(r"[.!?。！？\n,，、;；:：—–()（）]|\s-\s|\b(?:but|just|only|instead)\b")


@dataclass(frozen=True)
class Cue:
    """One weighted cue; ``name`` ("math:en:calculate") is what ``matched`` shows."""

    name: str
    label: str
    weight: float
    needs: Optional[str] = None  # "numbers": counts fully only when the prompt has numbers


@dataclass(frozen=True)
class Combo:
    """A cue that fires when every term occurs within ``near`` characters of the first."""

    cue: Cue
    terms: Tuple[str, ...]
    near: int


@dataclass(frozen=True)
class StructuralCue:
    """A regex over the original text, searched only when a ``gate`` substring occurs."""

    cue: Cue
    pattern: "re.Pattern[str]"
    gate: Tuple[str, ...]
    word_start: bool
    digits: bool = False  # searched only when the text holds a digit


@dataclass(frozen=True)
class Table:
    """One compiled language table."""

    lang: str
    script: str
    literal_re: Optional["re.Pattern[str]"]
    literals: Mapping[str, Tuple[Cue, ...]]  # literal -> cues (empty: a combo term or stopper)
    # (pattern, cue, whether a word must start at the match: a leading \b is checked in Python,
    # since the regex engine cannot skip ahead to a literal prefix behind one)
    patterns: Tuple[Tuple["re.Pattern[str]", Cue, bool], ...]
    combos: Tuple[Combo, ...]
    negate_before: Optional["re.Pattern[str]"]
    negate_after: Optional["re.Pattern[str]"]
    #: question words ("who", "언제", "どこ", "哪"): a question about a passage asks to find
    interrogative: Optional["re.Pattern[str]"] = None
    #: how/why words: a question with one asks for an explanation, not for a text
    explanation: Optional["re.Pattern[str]"] = None

    def lookup(self, word: str) -> Optional[Tuple[Cue, ...]]:
        """The cues of a matched literal, forgiving a plural ``s``/``es`` in Latin script."""
        found = self.literals.get(word)
        if found is None and self.script == "latin" and len(word) > 4:
            # Only words of 4+ letters take a plural: "his" must not read as "hi".
            if word.endswith("es"):
                found = self.literals.get(word[:-2])
            if found is None and word.endswith("s"):
                found = self.literals.get(word[:-1])
        return found

    def negated(self, low: str, start: int, end: int) -> bool:
        """Whether a negator ("don't", "不用", "は不要", "필요 없") governs ``low[start:end]``."""
        if self.negate_before is not None:
            window = low[max(0, start - _NEGATION_WINDOW[self.script]):start]
            cut = None
            for cut in _CLAUSE_END.finditer(window):
                pass
            if cut is not None:
                window = window[cut.end():]
            if self.negate_before.search(window):
                return True
        if self.negate_after is not None:
            window = low[end:end + _NEGATION_WINDOW["cjk"] + 4]
            m = _CLAUSE_END.search(window)
            if m is not None:
                window = window[:m.start()]
            if self.negate_after.search(window):
                return True
        return False

    def combo_position(self, combo: Combo, positions: Mapping[str, List[int]]) -> Optional[int]:
        """Where ``combo`` fires given the literal ``positions`` of one scan, else None."""
        first = self._term_positions(combo.terms[0], positions)
        rest = [self._term_positions(t, positions) for t in combo.terms[1:]]
        if not first or not all(rest):
            return None
        for p in first:
            if all(any(abs(q - p) <= combo.near for q in qs) for qs in rest):
                return p
        return None

    def _term_positions(self, term: str, positions: Mapping[str, List[int]]) -> List[int]:
        """Where ``term`` occurs, also inside a longer literal that matched there instead."""
        found = []
        for word, starts in positions.items():
            if self.script == "latin":
                offset = (" %s " % word).find(" %s " % term)
                if offset < 0 and word in (term + "s", term + "es"):
                    offset = 0
            else:
                offset = word.find(term)
            if offset >= 0:
                found.extend(s + offset for s in starts)
        return found


@dataclass(frozen=True)
class Tables:
    """All compiled tables: language tables by language, and the structural cues."""

    by_lang: Mapping[str, Table]
    structural: Tuple[StructuralCue, ...]


#: A character that is not an ASCII word character: where the next word can start.
_NON_WORD = re.compile(r"[^A-Za-z0-9_]")


def search(pattern: "re.Pattern[str]", text: str, start: int = 0, end: Optional[int] = None,
           word_start: bool = False) -> "Optional[re.Match[str]]":
    """``pattern.search`` within [start, end); with ``word_start``, only where a word starts.

    A match inside a word is skipped along with the rest of that word (no later position in
    it can start one), so the retries stay linear in the length of the text."""
    end = len(text) if end is None else end
    while True:
        m = pattern.search(text, start, end)
        if m is None or not word_start or not m.start() or text[m.start() - 1] not in WORD_CHARS:
            return m
        gap = _NON_WORD.search(text, m.start(), end)
        if gap is None:
            return None
        start = gap.end()


# -- compiling --------------------------------------------------------------------------------

def _trie_regex(words: Iterable[str]) -> str:
    """One regex matching any of ``words``, shaped as a trie so each position is tried once."""
    trie: Dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: Mapping[str, Any]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return build(trie)


def literal_regex(words: Sequence[str], script: str) -> Optional["re.Pattern[str]"]:
    if not words:
        return None
    body = _trie_regex(words)
    if script == "latin":
        # Whole words: a trailing s/es is allowed (Table.lookup strips it again); the left
        # boundary is checked by the caller, as a leading look-behind would slow the scan.
        body += r"(?:e?s)?(?![a-z0-9_])"
    return re.compile(body)


def word_regex(words: Sequence[str], script: str) -> Optional["re.Pattern[str]"]:
    """One regex for a list of words (whole words in Latin script, substrings in CJK)."""
    if not words:
        return None
    body = _trie_regex(sorted(set(words)))
    return re.compile(r"(?<![a-z])" + body + r"(?![a-z])" if script == "latin" else body)
