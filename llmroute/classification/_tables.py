"""Cue tables for the task classifier: read the JSON data, merge user additions, compile, match.

A language table (``llmroute/data/keywords/<lang>.json``)::

    {"lang": "en", "script": "latin",
     "negate_before": ["don't", ...], "negate_after": [...],
     "cues":     {"code": {"python": 2.0, "how many": {"w": 1.5, "needs": "numbers"}}, ...},
     "patterns": {"math": {"how-many": {"re": "\\bhow (?:many|much)", "w": 2.0}}, ...},
     "combos":   {"code": {"write+function": {"all": ["write", "function"], "w": 2.0}}}}

``cues`` are literals (lower case; Latin ones match whole words with an optional plural
``s``/``es``, CJK ones match as substrings), ``patterns`` are regular expressions (ASCII
``\\b``/``\\w``) for what a literal cannot say, ``combos`` fire when all their terms occur close
together. Each table's literals compile into one trie-shaped regex, so a scan is one pass.
``structural.json`` holds the cues that keywords miss (code fences, stack traces, equations).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["TEXT_LABELS", "WORD_CHARS", "Cue", "Combo", "StructuralCue", "Table", "Tables",
           "load_tables", "search", "structural_cues"]

#: The labels a text can get (function_calling / long_context come from the request).
TEXT_LABELS = ("code", "math", "summarization", "creative_writing", "extraction", "general")
#: ASCII word characters: what may not touch a Latin cue on either side.
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keywords")
_LANGUAGE_FILES = ("en.json", "ko.json", "zh.json", "ja.json")
_STRUCTURAL_FILE = "structural.json"
_SCRIPTS = ("latin", "cjk")
#: How close (in characters) the terms of a combo must be, unless the combo says otherwise.
DEFAULT_COMBO_NEAR = 40
#: How far before a cue a negator may stand ("I don't need a summary": 10 characters).
_NEGATION_WINDOW = {"latin": 16, "cjk": 8}
_CLAUSE_END = re.compile(r"[.!?。！？\n,，、;；:：—–()（）]|\s-\s|\b(?:but|just|only|instead)\b")
_CJK_RE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")
_FLAGS = {"ascii": re.ASCII, "ignorecase": re.IGNORECASE, "multiline": re.MULTILINE}


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


_A = re.ASCII


def _has(*parts: str) -> Callable[[str], bool]:
    return lambda text: any(p in text for p in parts)


# -- structural detection -------------------------------------------------------------------

#: Code syntax is counted over lines: statement ends, operators, keyword-led lines.
_SYNTAX_END = re.compile(r"[;{}][ \t]*(?:\n|$)")
_SYNTAX_OPS = re.compile(r"[=!<>]=|&&|\|\||->|=>|::|\+\+")
_HAS_OPS = _has("==", "!=", "<=", ">=", "&&", "||", "->", "=>", "::", "++")
_SYNTAX_KW = re.compile(r"\n[ \t]*(?:if|for|while|return|elif|else|try|except|catch|switch|const|"
                        r"let|var|func|fn|public|private|print|echo)\b[^\n]*[:;{(=]", _A)
#: A call on one line, ``x_or_y(7, 3)``, ``os.path.join(a)``, ``print(x)``: a name of at most
#: 40 characters with ``_`` or ``.`` in it, or of 3+ lower-case letters, then ``(...)``. Every
#: run is bounded and the look-ahead pins the name's end, so a scan is linear in the text.
_CALL = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z_][\w.]{0,39}\()"
                   r"(?:[a-z_][a-z0-9_]{2,39}|[A-Za-z_][\w.]{0,38}(?:_|\.\w)[\w.]{0,37})"
                   r"\([^)\n]{0,80}\)", _A)
#: Code syntax needs this many statement ends, operators or keyword-led lines to count fully.
_SYNTAX_ENOUGH = 8


def structural_cues(tables: Tables, text: str) -> List[Tuple[str, str, float, int]]:
    """(label, cue, weight, position of first match) of the structural cues in ``text``: the
    table's regexes (each behind its gate) and the counts that a regex cannot express."""
    found = []
    gated = "\n" + text  # so a gate "\ndef " also sees a prompt that starts with "def "
    for sc in tables.structural:
        if not sc.gate or any(g in gated for g in sc.gate):
            m = search(sc.pattern, text, word_start=sc.word_start)
            if m is not None:
                found.append((sc.cue.label, sc.cue.name, sc.cue.weight, m.start()))
    lines = 0
    if ";" in text or "{" in text or "}" in text:
        lines += _count(_SYNTAX_END, text, _SYNTAX_ENOUGH)
    if lines < _SYNTAX_ENOUGH and _HAS_OPS(text):
        lines += _count(_SYNTAX_OPS, text, _SYNTAX_ENOUGH - lines)
    if lines < _SYNTAX_ENOUGH and "\n" in text:
        lines += _count(_SYNTAX_KW, gated, _SYNTAX_ENOUGH - lines)
    if lines >= 2:
        found.append(("code", "code:syntax", 1.0 if lines < 4 else 2.0 if lines < 8 else 3.0, 0))
    pos = _math_function(text)
    if pos >= 0:
        found.append(("math", "math:function", 2.0, pos))
    calls = _calls(text)
    if calls:
        found.append(("code", "code:call", 1.0 if len(calls) < 3 else 2.0, calls[0]))
    return found


#: After a function name: what makes ``sin(x)``, ``log_2 8``, ``sin x``, ``lim_{x->0}`` math.
_FUNC_TAIL = {name: re.compile(tail, _A) for names, tail in (
    (("sin", "cos", "tan"), r"\s*(?:\(|\^|[0-9]|[a-zθ]\b)"),
    (("log", "ln", "exp", "sqrt"), r"\s*(?:\(|_|\^|[0-9])"),
    (("lim",), r"\s*_")) for name in names}


def _math_function(text: str) -> int:
    """Position of a function of analysis (``sin x``, ``log_2``, ``lim_``), else -1; a find()
    per name is much faster than a regex scan for names that hide in words ("business")."""
    for name, tail in _FUNC_TAIL.items():
        i = text.find(name)
        while i >= 0:
            if (not i or text[i - 1] not in WORD_CHARS) and tail.match(text, i + len(name)):
                return i
            i = text.find(name, i + 1)
    return -1


def _count(pattern: "re.Pattern[str]", text: str, limit: int) -> int:
    """How many times ``pattern`` occurs in ``text``, counting no further than ``limit``."""
    n = 0
    for _ in pattern.finditer(text):
        n += 1
        if n >= limit:
            break
    return n


def _calls(text: str, limit: int = 3) -> List[int]:
    """Positions of up to ``limit`` calls like ``x_or_y(7, 3)`` (see ``_CALL``)."""
    if "(" not in text:
        return []
    found: List[int] = []
    for m in _CALL.finditer(text):
        found.append(m.start())
        if len(found) >= limit:
            break
    return found


# -- reading and validating -------------------------------------------------------------------

def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as err:
        raise ValueError("cannot read keywords file %r: %s" % (path, err)) from err
    except json.JSONDecodeError as err:
        raise ValueError("keywords file %r is not valid JSON: %s" % (path, err)) from err
    if not isinstance(data, dict):
        raise ValueError("keywords file %r must hold a JSON object" % (path,))
    return data


def _check_label(label: Any, where: str) -> str:
    if label not in TEXT_LABELS:
        raise ValueError("%s: unknown label %r (expected one of %s)"
                         % (where, label, ", ".join(TEXT_LABELS)))
    return label


def _entry(value: Any, where: str) -> Tuple[float, Optional[str], Mapping[str, Any]]:
    """(weight, needs, raw object) of an entry given as a number or ``{"w": ..., ...}``."""
    raw = value if isinstance(value, dict) else {}
    w = raw.get("w", 1.0) if isinstance(value, dict) else value
    if isinstance(w, bool) or not isinstance(w, (int, float)) or w != w:
        raise ValueError("%s: weight must be a number, got %r" % (where, w))
    needs = raw.get("needs")
    if needs not in (None, "numbers"):
        raise ValueError("%s: 'needs' must be \"numbers\", got %r" % (where, needs))
    return float(w), needs, raw


def _phrase(phrase: Any, where: str) -> str:
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError("%s: a cue must be a non-empty string" % where)
    return " ".join(phrase.lower().split())


def _compile_pattern(source: Any, where: str, flags: int = re.ASCII) -> "re.Pattern[str]":
    if not isinstance(source, str) or not source:
        raise ValueError("%s: 're' must be a non-empty string" % where)
    try:
        compiled = re.compile(source, flags)
    except re.error as err:
        raise ValueError("%s: bad regular expression: %s" % (where, err)) from err
    if compiled.groups:
        raise ValueError("%s: use (?:...) instead of capturing groups" % where)
    return compiled


def _section(data: Mapping[str, Any], key: str, where: str) -> Iterable[Tuple[str, Mapping]]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ValueError("%s: %r must be an object of labels" % (where, key))
    for label, entries in section.items():
        _check_label(label, "%s: %s" % (where, key))
        if not isinstance(entries, dict):
            raise ValueError("%s: %s[%r] must be an object" % (where, key, label))
        yield label, entries


class _Draft:
    """A language table while tables are read and merged; frozen by :meth:`compile`."""

    def __init__(self, lang: str, script: str) -> None:
        if script not in _SCRIPTS:
            raise ValueError("table %r: script must be one of %s" % (lang, _SCRIPTS))
        self.lang, self.script = lang, script
        self.literals: Dict[Tuple[str, str], Tuple[float, Optional[str]]] = {}
        self.patterns: Dict[Tuple[str, str], Tuple["re.Pattern[str]", float, Optional[str],
                                                   bool]] = {}
        self.combos: Dict[Tuple[str, str], Tuple[Tuple[str, ...], int, float]] = {}
        self.negate_before: List[str] = []
        self.negate_after: List[str] = []

    def add(self, data: Mapping[str, Any], where: str) -> None:
        """Merge a table object; an entry already present takes the new weight (0 disables)."""
        for key in ("negate_before", "negate_after"):
            words = data.get(key, [])
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError("%s: %r must be a list of strings" % (where, key))
            getattr(self, key).extend(w.lower() for w in words)
        for label, entries in _section(data, "cues", where):
            for phrase, value in entries.items():
                spot = "%s: cue %r" % (where, phrase)
                w, needs, _ = _entry(value, spot)
                self.literals[(label, _phrase(phrase, spot))] = (w, needs)
        for label, entries in _section(data, "patterns", where):
            for name, value in entries.items():
                spot = "%s: pattern %r" % (where, name)
                if not isinstance(value, dict):
                    raise ValueError("%s: must be an object with 're' and 'w'" % spot)
                w, needs, _ = _entry(value, spot)
                source = value.get("re")
                # A leading \b is checked after the match (see Table.patterns).
                word_start = isinstance(source, str) and source.startswith("\\b")
                compiled = _compile_pattern(source[2:] if word_start else source, spot)
                self.patterns[(label, str(name))] = (compiled, w, needs, word_start)
        for label, entries in _section(data, "combos", where):
            for name, value in entries.items():
                spot = "%s: combo %r" % (where, name)
                terms = value.get("all") if isinstance(value, dict) else None
                if (not isinstance(terms, list) or len(terms) < 2
                        or not all(isinstance(t, str) and t.strip() for t in terms)):
                    raise ValueError("%s: 'all' must list two or more terms" % spot)
                w, _, raw = _entry(value, spot)
                near = raw.get("near", DEFAULT_COMBO_NEAR)
                if isinstance(near, bool) or not isinstance(near, int) or near <= 0:
                    raise ValueError("%s: 'near' must be a positive integer" % spot)
                self.combos[(label, str(name))] = (tuple(_phrase(t, spot) for t in terms), near, w)

    def compile(self) -> Table:
        def cue(label: str, name: str, w: float, needs: Optional[str] = None) -> Cue:
            return Cue("%s:%s:%s" % (label, self.lang, name), label, w, needs)

        literals: Dict[str, List[Cue]] = {}
        for (label, phrase), (w, needs) in self.literals.items():
            literals.setdefault(phrase, [])
            if w:  # a weight-0 literal still matches, so it shadows its substrings
                literals[phrase].append(cue(label, phrase, w, needs))
        combos = []
        for (label, name), (terms, near, w) in self.combos.items():
            for term in terms:
                literals.setdefault(term, [])
            if w:
                combos.append(Combo(cue(label, name, w), terms, near))
        return Table(
            lang=self.lang, script=self.script,
            literal_re=_literal_regex(sorted(literals), self.script),
            literals={k: tuple(v) for k, v in literals.items()},
            patterns=tuple((p, cue(label, name, w, needs), ws) for (label, name), (p, w, needs, ws)
                           in self.patterns.items() if w),
            combos=tuple(combos),
            negate_before=_negators(self.negate_before, self.script),
            negate_after=_negators(self.negate_after, self.script))


def _structural(data: Mapping[str, Any], where: str) -> List[StructuralCue]:
    entries = data.get("structural", [])
    if not isinstance(entries, list):
        raise ValueError("%s: 'structural' must be a list" % where)
    found = []
    for i, e in enumerate(entries):
        spot = "%s: structural[%d]" % (where, i)
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ValueError("%s: must be an object with a 'name'" % spot)
        label = _check_label(e.get("label"), spot)
        w, _, _ = _entry(e, spot)
        flags = 0
        for flag in e.get("flags", []):
            if flag not in _FLAGS:
                raise ValueError("%s: unknown flag %r" % (spot, flag))
            flags |= _FLAGS[flag]
        gate = e.get("gate", [])
        if not isinstance(gate, list) or not all(isinstance(g, str) and g for g in gate):
            raise ValueError("%s: 'gate' must be a list of non-empty strings" % spot)
        found.append(StructuralCue(Cue(e["name"], label, w), _compile_pattern(e.get("re"), spot,
                                                                              flags),
                                   tuple(gate), bool(e.get("word_start", False))))
    return found


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


def _literal_regex(words: Sequence[str], script: str) -> Optional["re.Pattern[str]"]:
    if not words:
        return None
    body = _trie_regex(words)
    if script == "latin":
        # Whole words: a trailing s/es is allowed (Table.lookup strips it again); the left
        # boundary is checked by the caller, as a leading look-behind would slow the scan.
        body += r"(?:e?s)?(?![a-z0-9_])"
    return re.compile(body)


def _negators(words: Sequence[str], script: str) -> Optional["re.Pattern[str]"]:
    if not words:
        return None
    body = _trie_regex(sorted(set(words)))
    return re.compile(r"(?<![a-z])" + body + r"(?![a-z])" if script == "latin" else body)


# -- public entry -----------------------------------------------------------------------------

def load_tables(extra_keywords: Optional[Mapping[str, Mapping[str, Any]]] = None,
                keywords_file: Optional[str] = None,
                use_default_tables: bool = True) -> Tables:
    """Read the shipped tables, merge a user file and user keywords, and compile them.

    ``keywords_file`` is either a full table (with ``"cues"``/``"patterns"``/``"combos"`` and a
    ``"lang"``: a shipped language is merged into, a new one needs ``"script"``; a
    ``"structural"`` list is added too) or a plain ``{label: {phrase: weight}}`` object, like
    ``extra_keywords``. A phrase already present for that label takes the new weight (``0``
    switches it off); a new one joins a user table of its script. Raises ``ValueError`` naming
    the bad file, label, phrase, weight or pattern.
    """
    drafts: Dict[str, _Draft] = {}
    structural: List[StructuralCue] = []
    if use_default_tables:
        for name in _LANGUAGE_FILES:
            data = _read_json(os.path.join(_DATA_DIR, name))
            lang = str(data.get("lang", name.split(".")[0]))
            drafts.setdefault(lang, _Draft(lang, str(data.get("script", "latin")))).add(
                data, "keywords table %s" % name)
        structural = _structural(_read_json(os.path.join(_DATA_DIR, _STRUCTURAL_FILE)),
                                 "keywords table %s" % _STRUCTURAL_FILE)
    if keywords_file is not None:
        data = _read_json(os.fspath(keywords_file))
        where = "keywords file %r" % (keywords_file,)
        if any(k in data for k in ("cues", "patterns", "combos", "structural")):
            lang = str(data.get("lang", "user"))
            script = str(data.get("script") or (drafts[lang].script if lang in drafts else ""))
            if any(k in data for k in ("cues", "patterns", "combos")):
                if not script:
                    raise ValueError("%s: a new table needs \"script\": \"latin\" or \"cjk\""
                                     % where)
                drafts.setdefault(lang, _Draft(lang, script)).add(data, where)
            structural.extend(_structural(data, where))
        else:
            _merge_plain(drafts, data, where)
    if extra_keywords:
        if not isinstance(extra_keywords, Mapping):
            raise ValueError("extra_keywords must map labels to {phrase: weight}")
        _merge_plain(drafts, extra_keywords, "extra_keywords")
    return Tables({lang: d.compile() for lang, d in drafts.items()}, tuple(structural))


def _merge_plain(drafts: Dict[str, _Draft], data: Mapping[str, Any], where: str) -> None:
    """Merge ``{label: {phrase: weight}}``: re-weight existing phrases, add new ones."""
    for label, entries in data.items():
        _check_label(label, where)
        if not isinstance(entries, Mapping):
            raise ValueError("%s[%r] must map phrases to weights" % (where, label))
        for phrase, value in entries.items():
            spot = "%s[%r][%r]" % (where, label, phrase)
            phrase = _phrase(phrase, spot)
            w, needs, _ = _entry(value, spot)
            hits = [d for d in drafts.values() if (label, phrase) in d.literals]
            for draft in hits:
                draft.literals[(label, phrase)] = (w, needs)
            if not hits:
                script = "cjk" if _CJK_RE.search(phrase) else "latin"
                lang = "user" if script == "latin" else "user-cjk"
                drafts.setdefault(lang, _Draft(lang, script)).literals[(label, phrase)] = (
                    w, needs)
