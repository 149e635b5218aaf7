"""Keyword tables for the task classifier: load the JSON data, merge user additions, compile.

A table is data (``llmroute/data/keywords/<lang>.json``)::

    {"lang": "en", "script": "latin",
     "negate_before": ["don't", ...], "negate_after": [...],
     "cues":     {"code": {"python": 2.0, "how many": {"w": 1.5, "needs": "numbers"}}, ...},
     "patterns": {"math": {"how-many": {"re": "how (?:many|much)", "w": 2.0}}, ...},
     "combos":   {"creative_writing": {"write+poem": {"all": ["write", "poem"], "w": 3.0}}}}

``cues`` are literals (lower case; Latin ones match whole words, with an optional plural
``s``/``es``; CJK ones match as substrings), ``patterns`` are regular expressions for what a
literal cannot say, ``combos`` fire when all their terms occur close together. All literals of a
table are compiled into one trie-shaped regex, so a scan costs one pass over the text.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["TEXT_LABELS", "Cue", "Combo", "Table", "Tables", "load_tables"]

#: The labels a text can be given (function_calling / long_context come from the request).
TEXT_LABELS = ("code", "math", "summarization", "creative_writing", "extraction", "general")

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "keywords")
_DEFAULT_FILES = ("en.json", "ko.json", "zh.json", "ja.json")
_SCRIPTS = ("latin", "cjk")
#: How close (in characters) the terms of a combo must be, unless the combo says otherwise.
DEFAULT_COMBO_NEAR = 40
_CJK_RE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")


@dataclass(frozen=True)
class Cue:
    """One weighted cue: ``name`` is what ``Classification.matched`` shows."""

    name: str
    label: str
    weight: float
    needs: Optional[str] = None  # "numbers": only counts when the prompt has numbers


@dataclass(frozen=True)
class Combo:
    """A cue that fires when every term occurs within ``near`` characters of the first."""

    cue: Cue
    terms: Tuple[str, ...]
    near: int


@dataclass(frozen=True)
class Table:
    """One compiled language table."""

    lang: str
    script: str
    literal_re: Optional["re.Pattern[str]"]
    literals: Mapping[str, Tuple[Cue, ...]]  # literal -> cues (empty tuple: combo term only)
    patterns: Tuple[Tuple["re.Pattern[str]", Cue], ...]
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


@dataclass(frozen=True)
class Tables:
    """All compiled tables, keyed by language."""

    by_lang: Mapping[str, Table]


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


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError("%s: weight must be a number, got %r" % (where, value))
    return float(value)


def _entry(value: Any, where: str) -> Tuple[float, Optional[str], Mapping[str, Any]]:
    """(weight, needs, raw dict) of a table entry given as a number or an object."""
    if isinstance(value, dict):
        needs = value.get("needs")
        if needs not in (None, "numbers"):
            raise ValueError("%s: 'needs' must be \"numbers\", got %r" % (where, needs))
        return _weight(value.get("w", 1.0), where), needs, value
    return _weight(value, where), None, {}


def _script_of(text: str) -> str:
    return "cjk" if _CJK_RE.search(text) else "latin"


class _Draft:
    """A mutable table while tables are read and merged; frozen by :func:`_compile`."""

    def __init__(self, lang: str, script: str) -> None:
        if script not in _SCRIPTS:
            raise ValueError("table %r: script must be one of %s" % (lang, _SCRIPTS))
        self.lang = lang
        self.script = script
        self.literals: Dict[Tuple[str, str], Tuple[float, Optional[str]]] = {}
        self.patterns: Dict[Tuple[str, str], Tuple[str, float, Optional[str]]] = {}
        self.combos: Dict[Tuple[str, str], Tuple[Tuple[str, ...], int, float]] = {}
        self.negate_before: List[str] = []
        self.negate_after: List[str] = []

    def add(self, data: Mapping[str, Any], where: str) -> None:
        """Merge a table object; an entry already present gets the new weight (0 disables)."""
        for key in ("negate_before", "negate_after"):
            words = data.get(key, [])
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError("%s: %r must be a list of strings" % (where, key))
            getattr(self, key).extend(w.lower() for w in words)
        for label, entries in _section(data, "cues", where):
            for phrase, value in entries.items():
                phrase = _phrase(phrase, "%s: cue %r" % (where, phrase))
                w, needs, _ = _entry(value, "%s: cue %r" % (where, phrase))
                self.literals[(label, phrase)] = (w, needs)
        for label, entries in _section(data, "patterns", where):
            for name, value in entries.items():
                spot = "%s: pattern %r" % (where, name)
                if not isinstance(value, dict) or not isinstance(value.get("re"), str):
                    raise ValueError("%s: must be an object with a string 're'" % spot)
                w, needs, _ = _entry(value, spot)
                _compile_pattern(value["re"], spot)
                self.patterns[(label, str(name))] = (value["re"], w, needs)
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
                self.combos[(label, str(name))] = (
                    tuple(_phrase(t, spot) for t in terms), near, w)


def _section(data: Mapping[str, Any], key: str, where: str) -> Iterable[Tuple[str, Mapping]]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ValueError("%s: %r must be an object of labels" % (where, key))
    for label, entries in section.items():
        _check_label(label, "%s: %s" % (where, key))
        if not isinstance(entries, dict):
            raise ValueError("%s: %s[%r] must be an object" % (where, key, label))
        yield label, entries


def _phrase(phrase: Any, where: str) -> str:
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError("%s: a cue must be a non-empty string" % where)
    return " ".join(phrase.lower().split())


def _compile_pattern(source: str, where: str) -> "re.Pattern[str]":
    try:
        compiled = re.compile(source)
    except re.error as err:
        raise ValueError("%s: bad regular expression: %s" % (where, err)) from err
    if compiled.groups:
        raise ValueError("%s: use (?:...) instead of capturing groups" % where)
    return compiled


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
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return build(trie)


def _literal_pattern(words: Sequence[str], script: str) -> Optional["re.Pattern[str]"]:
    if not words:
        return None
    body = _trie_regex(words)
    if script == "latin":
        # Whole words only; a trailing s/es is allowed and stripped again by Table.lookup.
        body = r"(?<![a-z0-9_])" + body + r"(?:e?s)?(?![a-z0-9_])"
    return re.compile(body)


def _negators(words: Sequence[str]) -> Optional["re.Pattern[str]"]:
    return re.compile(_trie_regex(sorted(set(words)))) if words else None


def _compile(draft: _Draft) -> Table:
    literals: Dict[str, List[Cue]] = {}
    for (label, phrase), (w, needs) in draft.literals.items():
        cue = Cue("%s:%s:%s" % (label, draft.lang, phrase), label, w, needs)
        literals.setdefault(phrase, []).append(cue)
    combos = []
    for (label, name), (terms, near, w) in draft.combos.items():
        for term in terms:
            literals.setdefault(term, [])
        combos.append(Combo(Cue("%s:%s:%s" % (label, draft.lang, name), label, w), terms, near))
    patterns = tuple(
        (_compile_pattern(src, "pattern %r" % name), Cue("%s:%s:%s" % (label, draft.lang, name),
                                                          label, w, needs))
        for (label, name), (src, w, needs) in draft.patterns.items())
    frozen = {k: tuple(c for c in v if c.weight) for k, v in literals.items()}
    return Table(
        lang=draft.lang, script=draft.script,
        literal_re=_literal_pattern(sorted(frozen), draft.script),
        literals=frozen, patterns=tuple(p for p in patterns if p[1].weight),
        combos=tuple(c for c in combos if c.cue.weight),
        negate_before=_negators(draft.negate_before),
        negate_after=_negators(draft.negate_after))


# -- public entry -----------------------------------------------------------------------------

def load_tables(extra_keywords: Optional[Mapping[str, Mapping[str, float]]] = None,
                keywords_file: Optional[str] = None,
                use_default_tables: bool = True) -> Tables:
    """Read the shipped tables, merge a user file and user keywords, and compile them.

    ``keywords_file`` is either a full table (with ``"lang"`` and ``"cues"``; a known language
    is merged into that table) or a plain ``{label: {phrase: weight}}`` object, like
    ``extra_keywords``. A phrase that already exists for that label takes the new weight (``0``
    switches it off); a new one joins the table of its script. Raises ``ValueError`` naming the
    bad file, label, phrase, weight or pattern.
    """
    drafts: Dict[str, _Draft] = {}
    if use_default_tables:
        for name in _DEFAULT_FILES:
            path = os.path.join(_DATA_DIR, name)
            data = _read_json(path)
            lang = str(data.get("lang", name.split(".")[0]))
            draft = drafts.setdefault(lang, _Draft(lang, str(data.get("script", "latin"))))
            draft.add(data, "keywords table %s" % name)
    if keywords_file is not None:
        data = _read_json(os.fspath(keywords_file))
        where = "keywords file %r" % (keywords_file,)
        if "cues" in data or "patterns" in data or "combos" in data:
            lang = str(data.get("lang", "user"))
            script = str(data.get("script") or (drafts[lang].script if lang in drafts else ""))
            if not script:
                raise ValueError("%s: a new table needs \"script\": \"latin\" or \"cjk\"" % where)
            drafts.setdefault(lang, _Draft(lang, script)).add(data, where)
        else:
            _merge_plain(drafts, data, where)
    if extra_keywords:
        if not isinstance(extra_keywords, Mapping):
            raise ValueError("extra_keywords must map labels to {phrase: weight}")
        _merge_plain(drafts, extra_keywords, "extra_keywords")
    return Tables({lang: _compile(d) for lang, d in drafts.items()})


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
                script = _script_of(phrase)
                lang = "user" if script == "latin" else "user-cjk"
                drafts.setdefault(lang, _Draft(lang, script)).literals[(label, phrase)] = (
                    w, needs)
